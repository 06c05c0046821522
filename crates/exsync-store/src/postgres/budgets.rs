//! Shared budgets on PostgreSQL. A draw is a single conditional `UPDATE`: the row lock it
//! takes orders racing workers, and each re-checks the condition on the row as the one before
//! it left it, so the last calls go to one of them and the limit holds. Windows run by the
//! database's clock, the one clock all workers share.

use std::time::Duration;

use postgres::Row;

use super::codec::Ctx;
use super::PgStore;
use crate::error::StoreResult;
use crate::roles::budgets::{count_of, row_count};
use crate::roles::{BudgetLevel, Budgets, Draw};

fn level(op: &'static str, row: &Row) -> StoreResult<BudgetLevel> {
    Ok(BudgetLevel {
        used: count_of(row.try_get(0).ctx(op, None)?),
        max: count_of(row.try_get(1).ctx(op, None)?),
        reserve: count_of(row.try_get(2).ctx(op, None)?),
    })
}

impl Budgets for PgStore {
    fn draw_budget(&self, name: &str, calls: u64) -> StoreResult<Draw> {
        const OP: &str = "draw from a budget";
        let calls = row_count(calls);
        self.with(OP, |client| {
            let taken = client
                .query_opt(
                    "UPDATE call_budgets SET used = used + $2 \
                     WHERE name = $1 AND used + $2 <= max - reserve \
                     RETURNING used, max, reserve",
                    &[&name, &calls],
                )
                .ctx(OP, None)?;
            if let Some(row) = taken {
                return Ok(Draw::Granted(level(OP, &row)?));
            }
            let now = client
                .query_opt(
                    "SELECT used, max, reserve FROM call_budgets WHERE name = $1",
                    &[&name],
                )
                .ctx(OP, None)?;
            match now {
                Some(row) => Ok(Draw::Refused(level(OP, &row)?)),
                None => Ok(Draw::Unknown),
            }
        })
    }

    fn report_budget(&self, name: &str, level: BudgetLevel, window: Duration) -> StoreResult<()> {
        const OP: &str = "report a budget";
        let (used, max, reserve) = (
            row_count(level.used),
            row_count(level.max),
            row_count(level.reserve),
        );
        let window = window.as_secs_f64();
        self.with(OP, |client| {
            client
                .execute(
                    "INSERT INTO call_budgets AS b (name, used, max, reserve, window_ends) \
                     VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) \
                     ON CONFLICT (name) DO UPDATE SET \
                       max = EXCLUDED.max, reserve = EXCLUDED.reserve, \
                       used = CASE WHEN b.window_ends <= now() THEN EXCLUDED.used \
                                   ELSE GREATEST(b.used, EXCLUDED.used) END, \
                       window_ends = CASE WHEN b.window_ends <= now() THEN EXCLUDED.window_ends \
                                          ELSE b.window_ends END",
                    &[&name, &used, &max, &reserve, &window],
                )
                .ctx(OP, None)?;
            Ok(())
        })
    }

    fn budget(&self, name: &str) -> StoreResult<Option<BudgetLevel>> {
        const OP: &str = "read a budget";
        self.with(OP, |client| {
            client
                .query_opt(
                    "SELECT used, max, reserve FROM call_budgets WHERE name = $1",
                    &[&name],
                )
                .ctx(OP, None)?
                .map(|row| level(OP, &row))
                .transpose()
        })
    }
}
