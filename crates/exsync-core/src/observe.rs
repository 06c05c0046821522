//! What connectors report as they work, for metrics: each request with its outcome, and each
//! pause a server asked for.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Receives what connectors report as they work, to count it as metrics. Implementations must
/// be cheap and must not block: they are called on every request path.
pub trait RequestObserver: Send + Sync {
    /// One request to `system` ("exchange", "crm") at `endpoint` (the EWS operation, the REST
    /// resource), answered with `outcome` ("ok", "throttled", "http_503", "error", …).
    fn request(&self, system: &'static str, endpoint: &str, outcome: &str);

    /// A wait the server asked for (ErrorServerBusy, Retry-After).
    fn throttled(&self, system: &'static str, wait: Duration);
}

/// A shareable observer for a connector's configuration.
#[derive(Clone)]
pub struct Observer(pub Arc<dyn RequestObserver>);

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer(..)")
    }
}
