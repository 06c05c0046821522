//! Shared budgets on SQLite: the same statements as on PostgreSQL, with SQLite's clock in
//! seconds since 1970. One process uses the file, so there is nobody to race, but the
//! behaviour is the same for the tests that hold both backends to it.

use std::time::Duration;

use rusqlite::{params, OptionalExtension};

use super::codec::Ctx;
use super::SqliteStore;
use crate::error::StoreResult;
use crate::roles::budgets::{count_of, row_count};
use crate::roles::{BudgetLevel, Budgets, Draw};

/// Now by SQLite's clock, in seconds since 1970.
const NOW: &str = "((julianday('now') - 2440587.5) * 86400.0)";

fn level(row: &rusqlite::Row<'_>) -> rusqlite::Result<BudgetLevel> {
    Ok(BudgetLevel {
        used: count_of(row.get(0)?),
        max: count_of(row.get(1)?),
        reserve: count_of(row.get(2)?),
    })
}

impl Budgets for SqliteStore {
    fn draw_budget(&self, name: &str, calls: u64) -> StoreResult<Draw> {
        const OP: &str = "draw from a budget";
        let conn = self.lock();
        let taken = conn
            .prepare_cached(
                "UPDATE call_budgets SET used = used + ?2 \
                     WHERE name = ?1 AND used + ?2 <= max - reserve \
                     RETURNING used, max, reserve",
            )
            .ctx(OP, None)?
            .query_row(params![name, row_count(calls)], level)
            .optional()
            .ctx(OP, None)?;
        if let Some(taken) = taken {
            return Ok(Draw::Granted(taken));
        }
        let now = conn
            .prepare_cached("SELECT used, max, reserve FROM call_budgets WHERE name = ?1")
            .ctx(OP, None)?
            .query_row(params![name], level)
            .optional()
            .ctx(OP, None)?;
        Ok(now.map_or(Draw::Unknown, Draw::Refused))
    }

    fn report_budget(&self, name: &str, level: BudgetLevel, window: Duration) -> StoreResult<()> {
        const OP: &str = "report a budget";
        self.lock()
            .prepare_cached(&format!(
                "INSERT INTO call_budgets (name, used, max, reserve, window_ends) \
                 VALUES (?1, ?2, ?3, ?4, {NOW} + ?5) \
                 ON CONFLICT (name) DO UPDATE SET \
                   max = excluded.max, reserve = excluded.reserve, \
                   used = CASE WHEN window_ends <= {NOW} THEN excluded.used \
                               ELSE MAX(used, excluded.used) END, \
                   window_ends = CASE WHEN window_ends <= {NOW} THEN excluded.window_ends \
                                      ELSE window_ends END"
            ))
            .ctx(OP, None)?
            .execute(params![
                name,
                row_count(level.used),
                row_count(level.max),
                row_count(level.reserve),
                window.as_secs_f64()
            ])
            .ctx(OP, None)?;
        Ok(())
    }

    fn budget(&self, name: &str) -> StoreResult<Option<BudgetLevel>> {
        const OP: &str = "read a budget";
        self.lock()
            .prepare_cached("SELECT used, max, reserve FROM call_budgets WHERE name = ?1")
            .ctx(OP, None)?
            .query_row(params![name], level)
            .optional()
            .ctx(OP, None)
    }
}
