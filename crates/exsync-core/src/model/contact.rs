//! A contact as both sides see it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::text::{Fit, MAX_LINE, MAX_TEXT};

/// Exchange holds at most three e-mail addresses per contact (EmailAddress1..3).
pub const MAX_EMAILS: usize = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub middle_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    /// Primary address first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phones: BTreeMap<PhoneKind, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub company: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub department: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<AddressKind, Address>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneKind {
    Business,
    Mobile,
    Home,
    Other,
    BusinessFax,
    Assistant,
}

impl PhoneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneKind::Business => "business",
            PhoneKind::Mobile => "mobile",
            PhoneKind::Home => "home",
            PhoneKind::Other => "other",
            PhoneKind::BusinessFax => "business_fax",
            PhoneKind::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    Business,
    Home,
    Other,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Business => "business",
            AddressKind::Home => "home",
            AddressKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub street: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub city: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub postal_code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
}

impl Address {
    fn fit(&mut self, kind: AddressKind, fit: &mut Fit) {
        let field = |part: &str| format!("addresses.{}.{part}", kind.as_str());
        self.street = fit.multiline(&field("street"), &self.street, MAX_LINE);
        for (name, part) in [
            ("city", &mut self.city),
            ("state", &mut self.state),
            ("postal_code", &mut self.postal_code),
            ("country", &mut self.country),
        ] {
            *part = fit.line(&field(name), part, MAX_LINE);
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }
}

impl Contact {
    /// Puts the contact in the one form both sides are compared in.
    pub fn normalize(&mut self) {
        self.sanitize();
    }

    /// [`Contact::normalize`], returning what had to go for the contact to fit Exchange:
    /// control characters, text beyond a field's limit, addresses that are no e-mail address.
    /// Formatting (spaces, line endings, case) is never reported.
    pub fn sanitize(&mut self) -> Vec<String> {
        let mut fit = Fit::default();
        for (field, part) in [
            ("first_name", &mut self.first_name),
            ("middle_name", &mut self.middle_name),
            ("last_name", &mut self.last_name),
            ("company", &mut self.company),
            ("title", &mut self.title),
            ("department", &mut self.department),
        ] {
            *part = fit.line(field, part, MAX_LINE);
        }
        self.emails = fit.emails("emails", &self.emails);
        self.emails.truncate(MAX_EMAILS);
        self.phones = std::mem::take(&mut self.phones)
            .into_iter()
            .map(|(kind, number)| {
                let field = format!("phones.{}", kind.as_str());
                (kind, fit.line(&field, &number, MAX_LINE))
            })
            .filter(|(_, number)| !number.is_empty())
            .collect();
        self.addresses = std::mem::take(&mut self.addresses)
            .into_iter()
            .map(|(kind, mut address)| {
                address.fit(kind, &mut fit);
                (kind, address)
            })
            .filter(|(_, address)| !address.is_empty())
            .collect();
        self.notes = fit.multiline("notes", &self.notes, MAX_TEXT);
        fit.notes
    }

    pub fn display_name(&self) -> String {
        [&self.first_name, &self.middle_name, &self.last_name]
            .into_iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}
