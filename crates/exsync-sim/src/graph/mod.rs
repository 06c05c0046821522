//! A Microsoft Graph (Exchange Online) simulator: the identity platform's token endpoint,
//! RBAC for Applications, Graph v1.0 contacts and calendar, delta, `$batch` and Exchange
//! Online's throttling, with a control API for tests.

// Until the front dispatches to every store.
#![allow(dead_code)]

mod calendar;
mod call;
mod contacts;
mod odata;
mod identity;
