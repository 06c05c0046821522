//! Allowances several workers draw from, such as the CRM's daily API calls: one row per
//! budget, so workers that each pace themselves cannot together spend past the limit.

use std::time::Duration;

use crate::error::StoreResult;

/// The shared budget of the CRM's API calls.
pub const CRM_API_CALLS: &str = "CRM API calls";

/// What a budget holds, as last reported and drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLevel {
    /// Calls counted as spent: the highest use the service reported in this window, plus
    /// every draw since.
    pub used: u64,
    /// Calls the service allows in its own period (a day for Salesforce).
    pub max: u64,
    /// Calls kept for others: draws stop at `max - reserve`.
    pub reserve: u64,
}

impl BudgetLevel {
    /// The most `used` may reach.
    pub fn limit(&self) -> u64 {
        self.max.saturating_sub(self.reserve)
    }
}

/// The outcome of a draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// Taken; the level after the draw.
    Granted(BudgetLevel),
    /// Refused: taking them would pass the limit. Nothing was taken.
    Refused(BudgetLevel),
    /// No worker has reported the budget yet, so nothing can be taken: report it first.
    Unknown,
}

/// Budgets every worker on the database draws from.
///
/// A draw is one conditional update (`used + n <= max - reserve`), so two workers racing for
/// the last calls cannot both have them. Reports feed in what the service itself counted; within
/// a window (by the database's clock) a report only raises `used`, because a worker's report
/// may predate calls others drew since. The first report after the window ends sets `used`
/// to what was reported, so calls that left the service's own rolling period come back; that
/// report may miss the calls in flight at that moment, which the reserve covers.
pub trait Budgets: Send + Sync {
    /// Takes `calls` from the budget `name` if they fit under its limit.
    fn draw_budget(&self, name: &str, calls: u64) -> StoreResult<Draw>;

    /// Feeds in what the service reported: `used` of `max`, and the `reserve` to keep. Opens a
    /// new window of length `window` when the last one has ended.
    fn report_budget(&self, name: &str, level: BudgetLevel, window: Duration) -> StoreResult<()>;

    /// The budget's level now, `None` before its first report.
    fn budget(&self, name: &str) -> StoreResult<Option<BudgetLevel>>;
}

/// The largest count a budget row holds. Levels come from a service's replies: capping them
/// keeps `used + n` from overflowing the database's 64-bit integers whatever was reported.
pub(crate) const BUDGET_CAP: u64 = 1 << 50;

/// A count as the row holds it.
pub(crate) fn row_count(n: u64) -> i64 {
    n.min(BUDGET_CAP) as i64
}

/// A count read back from the row.
pub(crate) fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
