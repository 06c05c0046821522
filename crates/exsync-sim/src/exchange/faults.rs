//! Injected faults, set through the control API.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A fault that fires on the next `count` matching EWS requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counted {
    pub count: u64,
    /// ErrorServerBusy: BackOffMilliseconds; HTTP 503: Retry-After seconds.
    #[serde(default)]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added before every EWS request is answered, while it holds its concurrency slot.
    #[serde(default)]
    pub latency_ms: u64,
    /// Operation name → probability of answering ErrorInternalServerError.
    #[serde(default)]
    pub error_rate: BTreeMap<String, f64>,
    /// SOAP fault ErrorServerBusy with BackOffMilliseconds = value.
    #[serde(default)]
    pub server_busy: Option<Counted>,
    /// HTTP 503 with Retry-After = value seconds.
    #[serde(default)]
    pub http_503: Option<Counted>,
    /// Close the connection without answering.
    #[serde(default)]
    pub drop_connection: Option<Counted>,
    /// Answer HTTP 200 with a truncated, unparseable body.
    #[serde(default)]
    pub malformed_reply: Option<Counted>,
    /// Restrict the counted faults to these operations (empty: every operation).
    #[serde(default)]
    pub operations: Vec<String>,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    ServerBusy(u64),
    Http503(u64),
    Drop,
    Malformed,
    InternalError,
}

fn take(slot: &mut Option<Counted>) -> Option<u64> {
    let c = slot.as_mut()?;
    if c.count == 0 {
        *slot = None;
        return None;
    }
    c.count -= 1;
    let v = c.value;
    if c.count == 0 {
        *slot = None;
    }
    Some(v)
}

impl Faults {
    /// Decides (and consumes) the fault for a request to `operation`.
    pub fn decide(&mut self, operation: &str) -> Action {
        let counted_applies =
            self.operations.is_empty() || self.operations.iter().any(|o| o == operation);
        if counted_applies {
            if take(&mut self.drop_connection).is_some() {
                return Action::Drop;
            }
            if let Some(s) = take(&mut self.http_503) {
                return Action::Http503(s);
            }
            if let Some(ms) = take(&mut self.server_busy) {
                return Action::ServerBusy(ms);
            }
            if take(&mut self.malformed_reply).is_some() {
                return Action::Malformed;
            }
        }
        if let Some(rate) = self.error_rate.get(operation) {
            if *rate > 0.0 && rand::thread_rng().gen_bool(rate.clamp(0.0, 1.0)) {
                return Action::InternalError;
            }
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn counted_faults_fire_then_expire_and_respect_operation_filter() {
        let mut f: Faults = serde_json::from_str(
            r#"{"server_busy":{"count":2,"value":1500},"operations":["GetItem"]}"#,
        )
        .unwrap();
        assert_eq!(f.decide("FindItem"), Action::None);
        assert_eq!(f.decide("GetItem"), Action::ServerBusy(1500));
        assert_eq!(f.decide("GetItem"), Action::ServerBusy(1500));
        assert_eq!(f.decide("GetItem"), Action::None);
        let mut f: Faults = serde_json::from_str(r#"{"error_rate":{"GetItem":1.0}}"#).unwrap();
        assert_eq!(f.decide("GetItem"), Action::InternalError);
        assert!(serde_json::from_str::<Faults>(r#"{"bogus":1}"#).is_err());
    }
}
