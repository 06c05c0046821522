//! The org's API allowance shared by several processes. Each process sees the allowance only
//! in the replies to its own calls, so processes pacing themselves would together overspend
//! between two replies; a [`SharedBudget`] (the service backs it with its state database)
//! hands out every call before it is sent and hears every count Salesforce reports.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::client::ApiUsage;

/// What a draw from the shared budget gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetDraw {
    /// The calls may be sent.
    Granted,
    /// They would pass the limit; nothing was taken.
    Refused {
        /// Calls counted as used, by every process together.
        used: u64,
        /// Calls the org allows in 24 hours.
        max: u64,
        /// Calls kept for the org's other integrations.
        reserve: u64,
    },
    /// No process has reported the allowance yet: ask Salesforce (`/limits`, which it does not
    /// count), report it, and draw again.
    Unknown,
}

/// A future a [`SharedBudget`] returns; its error is the reason in words.
pub type BudgetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// An API allowance several processes draw from.
pub trait SharedBudget: Send + Sync {
    /// Takes `calls` if they fit under the allowance less the reserve.
    fn draw(&self, calls: u64) -> BudgetFuture<'_, BudgetDraw>;
    /// Feeds in what Salesforce reported, with the reserve this process keeps.
    fn report(&self, usage: ApiUsage, reserve: u64) -> BudgetFuture<'_, ()>;
}

/// A shareable budget for the connector's configuration.
#[derive(Clone)]
pub struct Budget(pub Arc<dyn SharedBudget>);

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Budget(..)")
    }
}
