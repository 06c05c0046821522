//! The PostgreSQL backend: the state of an organisation that runs on a database it already
//! operates. Same schema and the same refusals as the SQLite backend; one user's pass still
//! commits in one transaction. The store's traits block, so this uses the synchronous client
//! with a small pool of connections of its own (see [`pool`]).

mod accounts;
mod budgets;
mod codec;
mod commit;
mod connect;
mod departures;
mod echo;
mod inbox;
mod leases;
mod migrations;
mod pool;
mod routes;
mod secrets;
mod slots;
mod state;
mod sync_state;
mod tls;
mod users;

use postgres::Client;

use crate::error::{StoreError, StoreResult};

pub(crate) use codec::describe;
pub use connect::{PgOptions, PgTls};
pub(crate) use migrations::PG_MIGRATIONS;
pub use migrations::PG_SCHEMA_VERSION;

/// A [`Store`](crate::Store) on a PostgreSQL database, shared by every connection the pool
/// opens. Each call takes a connection for its duration; calls from several threads run in
/// parallel, and PostgreSQL orders their transactions.
pub struct PgStore {
    pool: pool::Pool,
    /// The leases this store's worker holds; writes on a user's behalf are fenced by them.
    held: leases::Held,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.pool.target())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database named by `options`, brings its schema up to date and keeps
    /// the connection for the pool.
    pub fn open(options: &PgOptions) -> StoreResult<Self> {
        let store = PgStore {
            pool: pool::Pool::new(options)?,
            held: leases::Held::default(),
        };
        let target = store.pool.target();
        store.with("open", |client| {
            migrations::migrate(client, target, PG_MIGRATIONS).map(|_| ())
        })?;
        tracing::debug!(target_db = %target, "state database open");
        Ok(store)
    }

    /// The database as `postgres://user@host:port/db`, without a password: for messages.
    pub fn target(&self) -> &str {
        self.pool.target()
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> StoreResult<i64> {
        self.with("read schema version", |client| {
            migrations::recorded_version(client)
                .map_err(|e| codec::backend("read schema version", None, &e))
        })
    }

    /// The rows `sql` returns, each decoded by `decode`.
    fn read<T: Send>(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
        decode: fn(&'static str, &postgres::Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.with(op, |client| {
            let rows = client
                .query(sql, params)
                .map_err(|e| codec::backend(op, None, &e))?;
            rows.iter().map(|row| decode(op, row)).collect()
        })
    }

    /// Runs `f` in one transaction on a pooled connection; it commits when `f` succeeds.
    pub(crate) fn with_transaction<R: Send>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> StoreResult<R> + Send,
    ) -> StoreResult<R> {
        self.with(op, |client| {
            let mut tx = client
                .transaction()
                .map_err(|e| codec::backend(op, None, &e))?;
            let out = f(&mut tx)?;
            tx.commit().map_err(|e| codec::backend(op, None, &e))?;
            Ok(out)
        })
    }

    /// Runs `f` on a pooled connection. The client drives a runtime of its own, which tokio
    /// refuses to start on a thread that runs async tasks; a call made there (a console
    /// handler that reads status without `spawn_blocking`) runs on a short-lived thread of its
    /// own instead of panicking.
    fn with<R: Send>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Client) -> StoreResult<R> + Send,
    ) -> StoreResult<R> {
        let run = || -> StoreResult<R> {
            let mut client = self.pool.get(op)?;
            f(&mut client)
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return run();
        }
        std::thread::scope(|scope| scope.spawn(run).join()).unwrap_or_else(|_| {
            Err(StoreError::Backend {
                op,
                user: None,
                detail: "the database call panicked".into(),
            })
        })
    }
}
