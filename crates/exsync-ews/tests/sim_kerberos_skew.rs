//! A KDC whose clock runs two hours ahead of the Exchange simulator's: the simulator refuses the
//! ticket, and our client names the clock as the cause from the KRB-ERROR in the 401. Its own
//! test binary, because `KRB5_CONFIG` is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sim::kerberos_by_password;
use exsync_ews::EwsError;
use exsync_gss::Problem;
use exsync_testkit::kdc::KdcOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_is_reported_with_the_fix() {
    let Some((_kdc, sim, cfg)) = kerberos_by_password(KdcOptions {
        clock_ahead_secs: Some(7200),
        ..KdcOptions::default()
    }) else {
        return;
    };
    let err = sim.calendar_error(cfg).await;
    let text = err.to_string();
    match err {
        EwsError::Kerberos { error, .. } => assert_eq!(error.problem, Problem::ClockSkew, "{text}"),
        other => panic!("expected the clock to be named, got {other}"),
    }
    assert!(text.contains("NTP"), "{text}");
}
