//! A small pool of connections. The store's calls block, so a connection is taken for one call
//! and handed back; at most `max_connections` are open, and a caller waits (with a deadline)
//! for one to come back rather than open more. A connection the server closed is dropped, and
//! the next call opens a fresh one, which is how the store rides over a database restart.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use super::connect::{prepare, PgOptions, Prepared};
use super::tls::{client_config, RustlsConnect};
use crate::error::{StoreError, StoreResult};

/// How long a call waits for a free connection when all are in use.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(30);

/// A connection idle for longer is checked with an empty query before it is used: the
/// client only notices that the server went away (a restart, a failover, an idle timeout)
/// when it next talks to it, and a call should not fail on a connection that was dead before
/// it started.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Pool {
    prepared: Prepared,
    tls: Option<RustlsConnect>,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<(Client, Instant)>,
    open: usize,
}

impl Pool {
    pub(super) fn new(options: &PgOptions) -> StoreResult<Pool> {
        let prepared = prepare(options)?;
        let tls = match &prepared.tls {
            Some(tls) => Some(RustlsConnect {
                config: client_config(tls).map_err(|detail| StoreError::Open {
                    path: prepared.target.clone(),
                    detail,
                })?,
            }),
            None => None,
        };
        Ok(Pool {
            prepared,
            tls,
            max: options.max_connections.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        })
    }

    pub(super) fn target(&self) -> &str {
        &self.prepared.target
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection for one call: an idle one, a new one while fewer than the maximum are
    /// open, or the next one handed back.
    pub(super) fn get(&self, op: &'static str) -> StoreResult<Pooled<'_>> {
        let deadline = Instant::now() + WAIT_FOR_CONNECTION;
        loop {
            match self.take(deadline) {
                Taken::Idle(mut client, since) => {
                    // Checked outside the lock: a dead server must not stall other callers.
                    let alive = !client.is_closed()
                        && (since.elapsed() < CHECK_AFTER_IDLE
                            || client.is_valid(CHECK_TIMEOUT).is_ok());
                    if alive {
                        return Ok(Pooled {
                            pool: self,
                            client: Some(*client),
                        });
                    }
                    tracing::debug!(target_db = %self.target(), "dropped a dead pooled connection");
                    self.release_slot();
                }
                Taken::Slot => {
                    return match self.connect() {
                        Ok(client) => Ok(Pooled {
                            pool: self,
                            client: Some(client),
                        }),
                        Err(detail) => {
                            self.release_slot();
                            Err(StoreError::Backend {
                                op,
                                user: None,
                                detail: format!("cannot connect to {}: {detail}", self.target()),
                            })
                        }
                    };
                }
                Taken::TimedOut => return Err(StoreError::Busy { op, user: None }),
            }
        }
    }

    /// An idle connection, or a slot to open one in, waiting until `deadline` for either.
    fn take(&self, deadline: Instant) -> Taken {
        let mut state = self.lock();
        loop {
            if let Some((client, since)) = state.idle.pop() {
                return Taken::Idle(Box::new(client), since);
            }
            if state.open < self.max {
                state.open += 1;
                return Taken::Slot;
            }
            let now = Instant::now();
            if now >= deadline {
                return Taken::TimedOut;
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn connect(&self) -> Result<Client, String> {
        let result = match &self.tls {
            Some(tls) => self.prepared.config.connect(tls.clone()),
            None => self.prepared.config.connect(NoTls),
        };
        result.map_err(|e| super::codec::describe(&e))
    }

    fn release_slot(&self) {
        let mut state = self.lock();
        state.open = state.open.saturating_sub(1);
        drop(state);
        self.freed.notify_one();
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            self.release_slot();
            return;
        }
        self.lock().idle.push((client, Instant::now()));
        self.freed.notify_one();
    }
}

enum Taken {
    Idle(Box<Client>, Instant),
    Slot,
    TimedOut,
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        // Closing a client runs its own runtime, which tokio refuses on an async worker
        // thread; a store dropped there closes its connections on a thread of their own.
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                scope.spawn(move || drop(idle));
            });
        }
    }
}

/// A connection taken from the pool; it goes back when dropped.
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl Deref for Pooled<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Present from creation until drop.
        match &self.client {
            Some(client) => client,
            None => unreachable!("a pooled connection is present until it is dropped"),
        }
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        match &mut self.client {
            Some(client) => client,
            None => unreachable!("a pooled connection is present until it is dropped"),
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.give_back(client);
        }
    }
}
