//! The PostgreSQL backend: the state of an organisation that runs on a database it already
//! operates. Same schema and the same refusals as the SQLite backend; one user's pass still
//! commits in one transaction. The store's traits block, so this uses the synchronous client
//! with a small pool of connections of its own (see [`pool`]).

mod accounts;
mod codec;
mod commit;
mod connect;
mod echo;
mod migrations;
mod pool;
mod secrets;
mod state;
mod sync_state;
mod tls;
mod users;

use postgres::Client;

use crate::error::StoreResult;

pub use connect::{PgOptions, PgTls};
pub(crate) use migrations::PG_MIGRATIONS;
pub use migrations::PG_SCHEMA_VERSION;

/// A [`Store`](crate::Store) on a PostgreSQL database, shared by every connection the pool
/// opens. Each call takes a connection for its duration; calls from several threads run in
/// parallel, and PostgreSQL orders their transactions.
pub struct PgStore {
    pool: pool::Pool,
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
        let pool = pool::Pool::new(options)?;
        {
            let mut client = pool.get("open")?;
            migrations::migrate(&mut client, pool.target(), PG_MIGRATIONS)?;
        }
        tracing::debug!(target_db = %pool.target(), "state database open");
        Ok(PgStore { pool })
    }

    /// The database as `postgres://user@host:port/db`, without a password: for messages.
    pub fn target(&self) -> &str {
        self.pool.target()
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> StoreResult<i64> {
        let mut client = self.pool.get("read schema version")?;
        migrations::recorded_version(&mut client)
            .map_err(|e| codec::backend("read schema version", None, &e))
    }

    /// Runs `f` on a pooled connection.
    fn with<R>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Client) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let mut client = self.pool.get(op)?;
        f(&mut client)
    }
}
