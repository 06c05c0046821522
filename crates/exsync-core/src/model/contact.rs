//! A contact as both sides see it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::text::{Dotted, Fit, MAX_LINE, MAX_TEXT};

/// Exchange holds at most three e-mail addresses per contact (EmailAddress1..3).
pub const MAX_EMAILS: usize = 3;

/// A contact in the form both sides are mapped to and compared in. Each connector fills what its
/// side has; [`Contact::normalize`] makes two copies of the same person compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Given name; one line, cut to 255 characters. With `last_name` and `company` it is a
    /// first-sync match key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    /// Middle name or initial; one line, cut to 255 characters. Not part of any match key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub middle_name: String,
    /// Family name; one line, cut to 255 characters. With `first_name` and `company` it is a
    /// first-sync match key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    /// Primary address first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    /// At most one number per kind, one line each; kinds with an empty number are dropped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phones: BTreeMap<PhoneKind, String>,
    /// Employer's name; Salesforce keeps it as the contact's account, found or created by name.
    /// Part of the name + company match key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub company: String,
    /// Job title, one line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Department within `company`, one line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub department: String,
    /// At most one postal address per kind; empty addresses are dropped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<AddressKind, Address>,
    /// Free text, line endings normalised and cut to 32,000 characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Date of birth; a calendar date with no time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<NaiveDate>,
}

/// Which of a contact's phone numbers a value is; each side maps these to its own phone fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneKind {
    /// Main work number.
    Business,
    /// Mobile number.
    Mobile,
    /// Home number.
    Home,
    /// Any other number.
    Other,
    /// Work fax.
    BusinessFax,
    /// The assistant's number.
    Assistant,
}

impl PhoneKind {
    /// The kind's name in field paths (`phones.business_fax`) and in what `sanitize` reports.
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

/// Which of a contact's postal addresses a value is; each side maps these to its own address
/// fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// Work address.
    Business,
    /// Home address.
    Home,
    /// Any other address.
    Other,
}

impl AddressKind {
    /// The kind's name in field paths (`addresses.home.city`) and in what `sanitize` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Business => "business",
            AddressKind::Home => "home",
            AddressKind::Other => "other",
        }
    }
}

/// A postal address, every part optional; the street may span lines, the other parts are one line
/// each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street and house number; may hold several lines (building, floor).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub street: String,
    /// City or town.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub city: String,
    /// State, province or region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Postal or ZIP code, kept as text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub postal_code: String,
    /// Country as the side gave it (a name or a code); not translated between sides.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
}

impl Address {
    fn fit(&mut self, kind: AddressKind, fit: &mut Fit) {
        let kind = kind.as_str();
        fit.multiline_in_place(
            Dotted(&["addresses", kind, "street"]),
            &mut self.street,
            MAX_LINE,
        );
        for (name, part) in [
            ("city", &mut self.city),
            ("state", &mut self.state),
            ("postal_code", &mut self.postal_code),
            ("country", &mut self.country),
        ] {
            fit.line_in_place(Dotted(&["addresses", kind, name]), part, MAX_LINE);
        }
    }

    /// Whether no part is filled in; empty addresses are not synced.
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
            fit.line_in_place(field, part, MAX_LINE);
        }
        self.emails = fit.emails("emails", &self.emails);
        self.emails.truncate(MAX_EMAILS);
        for (kind, number) in &mut self.phones {
            fit.line_in_place(Dotted(&["phones", kind.as_str()]), number, MAX_LINE);
        }
        self.phones.retain(|_, number| !number.is_empty());
        for (kind, address) in &mut self.addresses {
            address.fit(*kind, &mut fit);
        }
        self.addresses.retain(|_, address| !address.is_empty());
        fit.multiline_in_place("notes", &mut self.notes, MAX_TEXT);
        fit.notes
    }

    /// First, middle and last name joined by spaces, leaving out empty parts; used where an item
    /// needs one name to show.
    pub fn display_name(&self) -> String {
        [&self.first_name, &self.middle_name, &self.last_name]
            .into_iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}
