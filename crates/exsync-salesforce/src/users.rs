//! The org's users and their profiles (configurations are assigned to profiles).

use exsync_core::config::MailboxField;

use crate::client::SalesforceClient;
use crate::error::{Error, Result};
use crate::mapping::{user_from_sobject, SfUser, USER_FIELDS};

impl SalesforceClient {
    /// Every user of the org, active or not, with the address of their mailbox as the pairing
    /// rule's field holds it. An address names a mailbox only once it is checked
    /// (`exsync_core::UserKey::parse`); the service does that and lists the users it leaves
    /// out, so none is dropped here unseen.
    pub async fn users(&self) -> Result<Vec<SfUser>> {
        let field = &self.config.mailbox_field;
        let soql = users_query(field)?;
        Ok(self
            .query_all(&soql)
            .await?
            .iter()
            .map(|record| user_from_sobject(record, field.as_str()))
            .collect())
    }
}

/// The users query, with the pairing field selected. The field was checked when the
/// configuration was read; it is checked again here because it is spliced into SOQL, where a
/// field name cannot be quoted.
fn users_query(field: &MailboxField) -> Result<String> {
    let checked = MailboxField::parse(field.as_str()).map_err(Error::Config)?;
    let mut fields: Vec<&str> = USER_FIELDS.to_vec();
    if !fields.contains(&checked.as_str()) {
        fields.push(checked.as_str());
    }
    Ok(format!(
        "SELECT {} FROM User ORDER BY Username",
        fields.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_pairing_field_is_selected_once_and_only_when_it_is_an_api_name() {
        assert_eq!(
            users_query(&MailboxField::Email).unwrap(),
            "SELECT Id, Username, Email, Name, IsActive, Profile.Name, TimeZoneSidKey FROM User ORDER BY Username"
        );
        assert!(
            users_query(&MailboxField::Custom("Exchange_Mailbox__c".into()))
                .unwrap()
                .contains("TimeZoneSidKey, Exchange_Mailbox__c FROM User")
        );
        let smuggled = MailboxField::Custom("Id FROM User WHERE IsActive = false--__c".into());
        assert!(matches!(users_query(&smuggled), Err(Error::Config(_))));
    }
}
