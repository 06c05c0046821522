//! Users who left the sync, on PostgreSQL: marked and their inbox emptied under the org
//! read's lease, the mark settled under the user's own, both fenced like the inbox.

use chrono::{DateTime, Utc};
use exsync_core::UserKey;

use super::codec::Ctx;
use super::leases::check;
use super::PgStore;
use crate::error::StoreResult;
use crate::roles::{Departures, LeaseScope, Retired, ORG_CRM_READ};
use crate::sqlite::codec::{parse_time, time_text, Decode};
use crate::sqlite::users::check_key;

impl Departures for PgStore {
    fn retire_departed(&self, active: &[UserKey], at: DateTime<Utc>) -> StoreResult<Retired> {
        const OP: &str = "retire the users who left the sync";
        for user in active {
            check_key(OP, user)?;
        }
        let keys: Vec<&str> = active.iter().map(UserKey::as_str).collect();
        let at = time_text(&at);
        let scope = LeaseScope::Org(ORG_CRM_READ.to_owned());
        let fence = self.held.fence(&scope);
        self.with_transaction(OP, |tx| {
            check(tx, OP, &scope, &fence)?;
            let marked = tx
                .execute(
                    "INSERT INTO crm_full_reads_due (user_key, since) \
                     SELECT user_key, $2 FROM users WHERE NOT (user_key = ANY($1)) \
                     ON CONFLICT (user_key) DO NOTHING",
                    &[&keys, &at],
                )
                .ctx(OP, None)?;
            let inbox_removed = tx
                .execute(
                    "DELETE FROM crm_inbox WHERE NOT (user_key = ANY($1))",
                    &[&keys],
                )
                .ctx(OP, None)?;
            Ok(Retired {
                marked,
                inbox_removed,
            })
        })
    }

    fn full_read_due(&self, user: &UserKey) -> StoreResult<Option<DateTime<Utc>>> {
        const OP: &str = "read whether a full read is due";
        let u = Some(user);
        let since: Option<String> = self.with(OP, |client| {
            client
                .query_opt(
                    "SELECT since FROM crm_full_reads_due WHERE user_key = $1",
                    &[&user.as_str()],
                )
                .ctx(OP, u)?
                .map(|row| row.try_get(0).ctx(OP, u))
                .transpose()
        })?;
        since
            .map(|text| parse_time(&text).decoded(OP, u))
            .transpose()
    }

    fn settle_full_read(&self, user: &UserKey, since: DateTime<Utc>) -> StoreResult<bool> {
        const OP: &str = "settle a full read";
        let scope = LeaseScope::User(user.clone());
        let fence = self.held.fence(&scope);
        let since = time_text(&since);
        self.with_transaction(OP, |tx| {
            check(tx, OP, &scope, &fence)?;
            let removed = tx
                .execute(
                    "DELETE FROM crm_full_reads_due WHERE user_key = $1 AND since = $2",
                    &[&user.as_str(), &since],
                )
                .ctx(OP, Some(user))?;
            Ok(removed > 0)
        })
    }
}
