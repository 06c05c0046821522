//! exsync's Salesforce connector: OAuth 2.0 (JWT bearer or client credentials) with the token
//! cached and refreshed on `INVALID_SESSION_ID`; SOQL with paging; an org-wide change cursor
//! per object; writes through sObject Collections with per-record outcomes; the mapping of
//! Contact, Event, EventRelation and User to and from the domain model; and API usage
//! accounting that stops before a configured reserve.

#![warn(unreachable_pub)]
#![warn(missing_docs)]

mod auth;
mod budget;
mod client;
mod config;
mod copies;
mod cursor;
mod error;
mod lens;
pub mod mapping;
mod query;
mod record;
mod rows;
mod users;
mod writes;

pub use budget::{Budget, BudgetDraw, BudgetFuture, SharedBudget};
pub use client::{ApiUsage, Idempotency, SalesforceClient};
pub use config::{AuthConfig, SalesforceConfig, Secret};
pub use copies::Tagged;
pub use cursor::{
    ChangeBatch, ChangeCursor, CrmChange, RawChanges, Scope, SyncObject, DELETED_WINDOW,
    MAX_OWNERS_IN_QUERY,
};
pub use error::{Error, Result, TransportError};
pub use lens::SalesforceLens;
pub use mapping::{EventRelation, SfUser};
pub use query::{quote, quote_list, QueryPage};
pub use record::SfRecord;
pub use writes::{ItemError, NewRecord, WriteOutcome, COLLECTION_MAX};

/// The external id field creates are keyed on, so a retried pass never duplicates a record.
/// An admin adds it (text, unique, external id) to Contact and Event.
pub const EXTERNAL_ID_FIELD: &str = "Exsync_Id__c";
