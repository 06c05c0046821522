//! The CRM's API allowance as a budget in the state database, which every worker on a shared
//! store draws from before each call it sends (see `exsync_store::Budgets`).

use std::sync::Arc;
use std::time::Duration;

use exsync_salesforce::{ApiUsage, BudgetDraw, BudgetFuture, SharedBudget};
use exsync_store::{BudgetLevel, Draw, Store, CRM_API_CALLS};

use crate::metrics::{names, Metrics};

/// How long the use counted in the database only grows, whatever a worker reports: long
/// enough that a report older than calls drawn since cannot hand them back, short enough
/// that calls leaving Salesforce's rolling 24 hours come back within a minute.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The allowance shared through the store.
pub struct StoreBudget {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl StoreBudget {
    /// A budget in `store`; refusals are counted in `metrics`.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> StoreBudget {
        StoreBudget { store, metrics }
    }
}

/// Runs a blocking store call off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> exsync_store::StoreResult<T> + Send + 'static,
) -> Result<T, String> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| format!("state database: {e}"))?
        .map_err(|e| format!("state database: {e}"))
}

impl SharedBudget for StoreBudget {
    fn draw(&self, calls: u64) -> BudgetFuture<'_, BudgetDraw> {
        Box::pin(async move {
            let draw = blocking(&self.store, move |s| s.draw_budget(CRM_API_CALLS, calls)).await?;
            Ok(match draw {
                Draw::Granted(_) => BudgetDraw::Granted,
                Draw::Refused(level) => {
                    self.metrics.add(names::CRM_BUDGET_REFUSALS, vec![], 1.0);
                    BudgetDraw::Refused {
                        used: level.used,
                        max: level.max,
                        reserve: level.reserve,
                    }
                }
                Draw::Unknown => BudgetDraw::Unknown,
            })
        })
    }

    fn report(&self, usage: ApiUsage, reserve: u64) -> BudgetFuture<'_, ()> {
        Box::pin(async move {
            let level = BudgetLevel {
                used: usage.used,
                max: usage.max,
                reserve,
            };
            blocking(&self.store, move |s| {
                s.report_budget(CRM_API_CALLS, level, WINDOW)
            })
            .await
        })
    }
}
