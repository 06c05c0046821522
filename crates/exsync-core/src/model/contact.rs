//! A contact as both sides see it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::text::{clean_email_list, clean_line, clean_multiline};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    Business,
    Home,
    Other,
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
    fn normalize(&mut self) {
        self.street = clean_multiline(&self.street);
        for part in [
            &mut self.city,
            &mut self.state,
            &mut self.postal_code,
            &mut self.country,
        ] {
            *part = clean_line(part);
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }
}

impl Contact {
    /// Puts the contact in the one form both sides are compared in.
    pub fn normalize(&mut self) {
        for part in [
            &mut self.first_name,
            &mut self.middle_name,
            &mut self.last_name,
            &mut self.company,
            &mut self.title,
            &mut self.department,
        ] {
            *part = clean_line(part);
        }
        self.emails = clean_email_list(&self.emails);
        self.emails.truncate(MAX_EMAILS);
        self.phones = std::mem::take(&mut self.phones)
            .into_iter()
            .map(|(kind, number)| (kind, clean_line(&number)))
            .filter(|(_, number)| !number.is_empty())
            .collect();
        self.addresses = std::mem::take(&mut self.addresses)
            .into_iter()
            .map(|(kind, mut address)| {
                address.normalize();
                (kind, address)
            })
            .filter(|(_, address)| !address.is_empty())
            .collect();
        self.notes = clean_multiline(&self.notes);
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
