//! The pairing rule: which field of a CRM user holds the primary SMTP address of the mailbox
//! their records sync to (`crm.mailbox_field`).

use std::fmt;

use serde::{Serialize, Serializer};

/// The CRM user field whose value names the user's mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MailboxField {
    /// `User.Email`, Lightning Sync's rule and the default.
    #[default]
    Email,
    /// `User.Username`, for orgs whose login names are the mailbox addresses.
    Username,
    /// `User.FederationIdentifier`, the single sign-on identity.
    FederationIdentifier,
    /// A custom field the org added to `User`, by its API name (`Exchange_Mailbox__c`, or with
    /// a namespace `ns__Exchange_Mailbox__c`); checked by [`MailboxField::parse`].
    Custom(String),
}

/// Salesforce caps a field name at 40 characters before the `__c` suffix.
const CUSTOM_NAME_MAX: usize = 40;
/// And a namespace prefix at 15.
const NAMESPACE_MAX: usize = 15;

impl MailboxField {
    /// Reads the setting. A custom field must be a Salesforce API name, because it is written
    /// into the SOQL that reads the users, where an identifier cannot be quoted: the check is
    /// its encoding.
    pub fn parse(text: &str) -> Result<MailboxField, String> {
        match text {
            "Email" => return Ok(MailboxField::Email),
            "Username" => return Ok(MailboxField::Username),
            "FederationIdentifier" => return Ok(MailboxField::FederationIdentifier),
            _ => {}
        }
        let Some(stem) = text.strip_suffix("__c") else {
            return Err(format!(
                "`{}` is not Email, Username, FederationIdentifier or the API name of a custom \
                 User field (ending in __c, such as Exchange_Mailbox__c)",
                shown(text)
            ));
        };
        let (namespace, name) = match stem.split_once("__") {
            Some((ns, name)) => (Some(ns), name),
            None => (None, stem),
        };
        if let Some(ns) = namespace {
            if let Err(why) = api_word(ns, NAMESPACE_MAX) {
                return Err(format!(
                    "`{}` is not a custom field's API name: its namespace {why}",
                    shown(text)
                ));
            }
        }
        match api_word(name, CUSTOM_NAME_MAX) {
            Ok(()) => Ok(MailboxField::Custom(text.to_owned())),
            Err(why) => Err(format!(
                "`{}` is not a custom field's API name: the name before __c {why}",
                shown(text)
            )),
        }
    }

    /// The field's API name, as SOQL and the file spell it.
    pub fn as_str(&self) -> &str {
        match self {
            MailboxField::Email => "Email",
            MailboxField::Username => "Username",
            MailboxField::FederationIdentifier => "FederationIdentifier",
            MailboxField::Custom(name) => name,
        }
    }
}

impl fmt::Display for MailboxField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MailboxField {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Salesforce's rule for a name part: a letter first, then letters, digits and single
/// underscores, no underscore at the end.
fn api_word(word: &str, max: usize) -> Result<(), String> {
    if word.is_empty() {
        return Err("is empty".into());
    }
    if word.len() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if !word.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("must start with a letter".into());
    }
    if !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("may hold only letters, digits and underscores".into());
    }
    if word.contains("__") || word.ends_with('_') {
        return Err("may not hold two underscores in a row or end with one".into());
    }
    Ok(())
}

/// An admin's text quoted back in an error: one line, cut short.
fn shown(text: &str) -> String {
    text.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_standard_fields_and_custom_api_names_are_read() {
        assert_eq!(MailboxField::parse("Email").unwrap(), MailboxField::Email);
        assert_eq!(
            MailboxField::parse("Username").unwrap(),
            MailboxField::Username
        );
        assert_eq!(
            MailboxField::parse("FederationIdentifier").unwrap(),
            MailboxField::FederationIdentifier
        );
        for name in [
            "Exchange_Mailbox__c",
            "X__c",
            "acme__Mailbox2__c",
            "Mail__box__c",
        ] {
            assert_eq!(
                MailboxField::parse(name).unwrap(),
                MailboxField::Custom(name.into())
            );
        }
        assert_eq!(MailboxField::default().as_str(), "Email");
    }

    #[test]
    fn what_is_not_an_api_name_is_refused_with_the_reason() {
        for (text, reason) in [
            ("email", "is not Email, Username"),
            ("Mailbox", "ending in __c"),
            ("Email, Password__c", "only letters, digits"),
            ("Mail box__c", "only letters, digits"),
            ("1Mailbox__c", "must start with a letter"),
            ("_Mailbox__c", "must start with a letter"),
            ("9ns__Mailbox__c", "namespace must start with a letter"),
            ("Mailbox___c", "two underscores"),
            ("Mailbox___c", "end with one"),
            ("__c", "is empty"),
            ("a__b__c__c", "two underscores"),
            ("Id FROM User WHERE Name != ''--__c", "letters, digits"),
        ] {
            let err = MailboxField::parse(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
        let long = format!("{}__c", "A".repeat(41));
        assert!(MailboxField::parse(&long)
            .unwrap_err()
            .contains("longer than 40"));
        assert!(MailboxField::parse(&format!("{}__c", "A".repeat(40))).is_ok());
    }
}
