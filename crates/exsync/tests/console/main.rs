//! The console, in one test binary (one module per area): who may call each route, the
//! domains an EWS URL may name, the connectivity check, the command-line side (`exsync
//! admin`, `exsync secrets`, `exsync serve`), configurations edited from the console, the
//! conflicts pages, Exchange Online's app, how every page encodes what it shows, `openapi.json` against the
//! routes, secrets that never come back out, and the setup pages in headless Chromium.
//! `support` is the in-process console (and the simulators) they share.
//!
//! Process-global state: `secrets` installs the global tracing subscriber to read the logs,
//! and `cli` installs rustls's default crypto provider (an earlier install is fine). Under
//! nextest each test runs in its own process; under `cargo test` the other tests of this
//! binary also log into the captured buffer, which only adds lines to what `secrets` reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access;
mod allowlist;
mod auth_modes;
mod browser;
mod check;
mod cli;
mod configurations;
mod conflicts;
mod encoding;
mod exchange_online;
mod kept_input;
mod kerberos;
mod keytab;
mod openapi;
mod secrets;
mod user_page;
mod workers;
