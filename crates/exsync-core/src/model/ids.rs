//! Identifiers of records on each side and of the users we sync.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The two systems a pair of records lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The CRM (Salesforce), where the records are owned.
    Crm,
    /// The user's Exchange mailbox.
    Exchange,
}

impl Side {
    /// The side a change on this one is written to.
    pub fn other(self) -> Side {
        match self {
            Side::Crm => Side::Exchange,
            Side::Exchange => Side::Crm,
        }
    }

    /// The side's name in logs, reports and the status database (`crm`, `exchange`).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Crm => "crm",
            Side::Exchange => "exchange",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of record a pair holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A contact (Salesforce Contact, Exchange contact item).
    Contact,
    /// A calendar event (Salesforce Event, Exchange calendar item).
    Event,
}

impl ItemKind {
    /// The kind's name in configuration, logs and the status database (`contact`, `event`).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Contact => "contact",
            ItemKind::Event => "event",
        }
    }

    /// Reads a name written by [`ItemKind::as_str`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<ItemKind> {
        match s {
            "contact" => Some(ItemKind::Contact),
            "event" => Some(ItemKind::Event),
            _ => None,
        }
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps an id as the side gave it; nothing is checked, since only the side can tell a
            /// valid id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id exactly as the side spells it, for requests and storage.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A CRM record id (a Salesforce 18-character id, for example).
    CrmId
);
string_id!(
    /// An Exchange item id (EWS `ItemId/@Id`).
    ExchangeId
);
string_id!(
    /// A syncing user, keyed by the primary SMTP address of their mailbox, lower-cased.
    UserKey
);

impl UserKey {
    /// Builds a key from an address as typed, folding case and surrounding space.
    pub fn from_email(email: &str) -> Self {
        Self(email.trim().to_lowercase())
    }

    /// Builds a key from an address that came from elsewhere (a CRM user's e-mail), refusing
    /// one that is not an RFC 5322 address in ASCII: the key names the mailbox credentials are
    /// used on and the domain Autodiscover asks, so it must mean the same to every system.
    pub fn parse(email: &str) -> Result<Self, super::address::AddressError> {
        let key = Self::from_email(email);
        super::address::check_address(key.as_str(), super::address::Charset::Ascii)?;
        Ok(key)
    }
}

/// An id on either side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "side", content = "id", rename_all = "snake_case")]
pub enum ItemId {
    /// A record in the CRM.
    Crm(CrmId),
    /// An item in an Exchange mailbox.
    Exchange(ExchangeId),
}

impl ItemId {
    /// The side the id belongs to.
    pub fn side(&self) -> Side {
        match self {
            ItemId::Crm(_) => Side::Crm,
            ItemId::Exchange(_) => Side::Exchange,
        }
    }

    /// The id without its side, as that side spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ItemId::Crm(id) => id.as_str(),
            ItemId::Exchange(id) => id.as_str(),
        }
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.side(), self.as_str())
    }
}
