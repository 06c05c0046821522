//! The org's users and their profiles (configurations are assigned to profiles).

use crate::client::SalesforceClient;
use crate::error::Result;
use crate::mapping::{user_from_sobject, SfUser, USER_FIELDS};

impl SalesforceClient {
    /// Every user of the org, active or not, with the e-mail address as the CRM holds it. An
    /// address names a mailbox only once it is checked (`exsync_core::UserKey::parse`); the
    /// service does that and lists the users it leaves out, so none is dropped here unseen.
    pub async fn users(&self) -> Result<Vec<SfUser>> {
        let soql = format!(
            "SELECT {} FROM User ORDER BY Username",
            USER_FIELDS.join(", ")
        );
        Ok(self
            .query_all(&soql)
            .await?
            .iter()
            .map(user_from_sobject)
            .collect())
    }
}
