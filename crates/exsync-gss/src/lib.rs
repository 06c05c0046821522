//! Kerberos for HTTP `Negotiate` (SPNEGO, RFC 4559) through MIT's GSSAPI, loaded at run time
//! (`libgssapi_krb5.so.2`): building needs nothing, and a machine without Kerberos runs every
//! other authentication scheme and says how to install it when Kerberos is asked for.
//!
//! - [`ClientCredential`]: the service account's tickets, from its password or a keytab, kept in a
//!   private memory cache (never the user's default cache) and acquired again before they expire.
//! - [`Initiator`]: one HTTP authentication, with channel binding and mutual authentication.
//! - [`Acceptor`]: the server side, checking tickets against a keytab (the Exchange simulator).
//!
//! The realm's KDCs come from the krb5.conf `KRB5_CONFIG` names, which the caller sets up
//! before threads start ([`krb5_conf`]).

mod error;
mod ffi;
mod files;
pub mod krb5_conf;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use error::{KrbError, Problem};
use ffi::{Context, Cred, Name, NameKind};
pub use files::PrivateFiles;

/// Whether MIT's GSSAPI can be loaded here; the error says how to install it.
pub fn available() -> Result<(), KrbError> {
    ffi::available().map_err(|e| KrbError::unavailable(&e))
}

/// How the service account proves itself to the KDC.
#[derive(Clone)]
pub enum ClientSecret {
    /// The account's password.
    Password(String),
    /// A keytab file holding the account's keys (written 0600 by the caller).
    Keytab(PathBuf),
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSecret::Password(_) => f.write_str("Password(***)"),
            ClientSecret::Keytab(path) => write!(f, "Keytab({})", path.display()),
        }
    }
}

/// The service account's Kerberos credential: its ticket-granting ticket and the service
/// tickets obtained with it, cached in memory and shared by every request.
pub struct ClientCredential {
    cred: Arc<Cred>,
    principal: String,
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredential")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// Memory caches are per process; a counter keeps each credential's apart.
static NEXT_CACHE: AtomicU64 = AtomicU64::new(0);

impl ClientCredential {
    /// Logs `principal` (`user@REALM`) in with `secret`. Blocks while the KDC answers.
    pub fn acquire(principal: &str, secret: &ClientSecret) -> Result<ClientCredential, KrbError> {
        available()?;
        let name = Name::import(principal, NameKind::Principal).map_err(KrbError::from_status)?;
        let cred = match secret {
            ClientSecret::Password(password) => {
                Cred::with_password(&name, password).map_err(KrbError::from_status)?
            }
            ClientSecret::Keytab(path) => {
                let cache = format!(
                    "MEMORY:exsync-{}-{}",
                    std::process::id(),
                    NEXT_CACHE.fetch_add(1, Ordering::Relaxed)
                );
                let keytab = format!("FILE:{}", path.display());
                Cred::from_store(
                    Some(&name),
                    &[("client_keytab", &keytab), ("ccache", &cache)],
                    false,
                )
                .map_err(KrbError::from_status)?
            }
        };
        Ok(ClientCredential {
            cred: Arc::new(cred),
            principal: principal.to_owned(),
        })
    }

    /// The principal as configured.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Seconds until the ticket-granting ticket expires, as the library reports it; `None` when
    /// it cannot say (e.g. a keytab credential before its first use).
    pub fn lifetime_secs(&self) -> Option<u32> {
        self.cred.inquire().ok().map(|(_, lifetime)| lifetime)
    }
}

/// The flags we ask for: mutual authentication, so the server proves it holds the service key.
const REQUESTED: u32 = ffi::FLAG_MUTUAL | ffi::FLAG_SEQUENCE;

/// One client-side authentication to `HTTP/<host>`.
pub struct Initiator {
    cred: Arc<Cred>,
    target: Name,
    host: String,
    binding: Option<Vec<u8>>,
    ctx: Context,
    complete: bool,
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("host", &self.host)
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts authenticating to `HTTP/<host>` (the host exactly as configured: no DNS
    /// canonicalisation), binding to the TLS channel when `channel_binding` holds its
    /// application data (`tls-server-end-point:<hash>`). Returns the first token, which asks the
    /// KDC for a service ticket when none is cached: blocking.
    pub fn start(
        credential: &ClientCredential,
        host: &str,
        channel_binding: Option<Vec<u8>>,
    ) -> Result<(Initiator, Vec<u8>), KrbError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let target = Name::import(&format!("HTTP@{host}"), NameKind::HostBasedService)
            .map_err(|s| KrbError::from_status(s).for_host(&host))?;
        let mut initiator = Initiator {
            cred: Arc::clone(&credential.cred),
            target,
            host,
            binding: channel_binding,
            ctx: Context::new(),
            complete: false,
        };
        let token = initiator.step(None)?;
        Ok((initiator, token))
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, KrbError> {
        let step = self.ctx.init(
            &self.cred,
            &self.target,
            REQUESTED,
            self.binding.as_deref(),
            input,
        );
        match step.status.major {
            ffi::COMPLETE => {
                if step.flags & ffi::FLAG_MUTUAL == 0 {
                    return Err(KrbError::new(
                        Problem::MutualAuth,
                        "the context completed without mutual authentication",
                    )
                    .for_host(&self.host));
                }
                self.complete = true;
                Ok(step.token)
            }
            ffi::CONTINUE_NEEDED => Ok(step.token),
            _ => Err(KrbError::from_status(step.status).for_host(&self.host)),
        }
    }

    /// Checks the server's final token (`WWW-Authenticate: Negotiate <token>` on the success
    /// reply): only then has the server proved it is `HTTP/<host>`. A KRB-ERROR the server sent
    /// instead (e.g. on a 401) comes back as the error it names.
    pub fn finish(&mut self, token: &[u8]) -> Result<(), KrbError> {
        if self.complete {
            return Ok(());
        }
        let out = self.step(Some(token))?;
        if !self.complete {
            return Err(KrbError::new(
                Problem::MutualAuth,
                format!(
                    "the server's token did not complete the handshake ({} more bytes wanted)",
                    out.len()
                ),
            )
            .for_host(&self.host));
        }
        Ok(())
    }

    /// Whether mutual authentication succeeded.
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

/// The server's credential: the keys of its service principals, from a keytab.
pub struct AcceptorCredential {
    cred: Arc<Cred>,
}

impl AcceptorCredential {
    /// Reads the keys from `keytab`; any service principal in it is accepted.
    pub fn from_keytab(keytab: &std::path::Path) -> Result<AcceptorCredential, KrbError> {
        available()?;
        let keytab = format!("FILE:{}", keytab.display());
        let cred =
            Cred::from_store(None, &[("keytab", &keytab)], true).map_err(KrbError::from_status)?;
        Ok(AcceptorCredential {
            cred: Arc::new(cred),
        })
    }
}

/// What the acceptor concluded from one token.
#[derive(Debug)]
pub enum Accepted {
    /// Authenticated: the client's principal, the token to return (mutual authentication), and
    /// whether the client's channel binding was checked and matched.
    Done {
        client: String,
        token: Vec<u8>,
        channel_bound: bool,
    },
    /// Another round is needed: send this token in a 401.
    Continue(Vec<u8>),
}

/// A refused token: why, and the KRB-ERROR token the client may be sent so it can say why too.
#[derive(Debug)]
pub struct Refused {
    pub error: KrbError,
    pub token: Vec<u8>,
}

/// One server-side authentication.
pub struct Acceptor {
    cred: Arc<Cred>,
    ctx: Context,
}

impl Acceptor {
    /// A fresh context for one request.
    pub fn new(credential: &AcceptorCredential) -> Acceptor {
        Acceptor {
            cred: Arc::clone(&credential.cred),
            ctx: Context::new(),
        }
    }

    /// Checks `token` against the keytab, and the channel binding when `channel_binding` holds
    /// the application data of this connection's (a client that sent a different one is
    /// refused; one that sent none is accepted with `channel_bound: false`).
    pub fn step(
        &mut self,
        token: &[u8],
        channel_binding: Option<&[u8]>,
    ) -> Result<Accepted, Refused> {
        let step = self.ctx.accept(&self.cred, token, channel_binding);
        match step.status.major {
            ffi::COMPLETE => Ok(Accepted::Done {
                client: step.peer,
                token: step.token,
                channel_bound: step.flags & ffi::FLAG_CHANNEL_BOUND != 0,
            }),
            ffi::CONTINUE_NEEDED => Ok(Accepted::Continue(step.token)),
            _ => Err(Refused {
                error: KrbError::from_status(step.status),
                token: step.token,
            }),
        }
    }
}
