//! `auto` routing: which backend serves a mailbox is asked of on-premises Autodiscover before
//! the user's pass, and the answer kept in the state database, so a mailbox that moves online
//! is followed with no configuration change (the pass then re-links its items, see
//! `pass/relink.rs`).
//!
//! An answer is reused for [`AutoRouting::ttl`], and looked up again at once when the backend
//! it named did not find the mailbox. A lookup that fails falls back to the last answer, with
//! a notice; with none, the user's pass fails with the reason and what to do.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use exsync_core::config::{ExchangeOnlineConfig, ROUTE_TTL_DEFAULT_HOURS};
use exsync_core::UserKey;
use exsync_store::{MailboxRoute, Notice, Store};

use super::mailboxes::Backend;
use super::sides::{SideError, SideErrorKind, SideResult};

/// Where a lookup found a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The backend that serves it.
    pub backend: Backend,
    /// What said so, for the admin (the routing address, or the EWS URL).
    pub evidence: String,
}

/// A lookup in flight.
pub type LocateFuture<'a> = Pin<Box<dyn Future<Output = Result<Located, String>> + Send + 'a>>;

/// Finds where a mailbox is: on-premises Autodiscover in the service
/// (`connect::locate::AutodiscoverLocator`). A failure is the reason, in words.
pub trait Locate: Send + Sync {
    /// Looks `user`'s mailbox up, under the lookup's own caps and deadlines.
    fn locate<'a>(&'a self, user: &'a UserKey) -> LocateFuture<'a>;
}

/// How `auto` mailboxes are located, and how long an answer holds.
#[derive(Clone)]
pub struct AutoRouting {
    /// Asks where a mailbox is.
    pub locator: Arc<dyn Locate>,
    /// How long an answer is reused before it is looked up again.
    pub ttl: chrono::Duration,
}

impl AutoRouting {
    /// The default reuse ([`ROUTE_TTL_DEFAULT_HOURS`]): a mailbox move is rare, and a failed
    /// call looks it up at once anyway.
    pub fn new(locator: Arc<dyn Locate>) -> Self {
        AutoRouting {
            locator,
            ttl: chrono::Duration::hours(i64::from(ROUTE_TTL_DEFAULT_HOURS)),
        }
    }

    /// Reuse for as long as `[exchange_online] route_ttl_hours` says.
    pub fn configured(locator: Arc<dyn Locate>, online: &ExchangeOnlineConfig) -> Self {
        AutoRouting {
            locator,
            ttl: chrono::Duration::hours(i64::from(online.route_ttl_hours)),
        }
    }
}

/// Why the stored answer must be looked up again now, or `None` when it still holds.
pub(crate) fn due(
    cached: Option<&MailboxRoute>,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
    recheck: bool,
) -> Option<String> {
    let Some(route) = cached else {
        return Some("never looked up".to_owned());
    };
    if Backend::parse(&route.backend).is_none() {
        return Some(format!("the stored backend `{}` is unknown", route.backend));
    }
    if recheck {
        return Some("the backend did not find the mailbox".to_owned());
    }
    if let Some(why) = &route.recheck {
        return Some(why.clone());
    }
    (now - route.checked_at >= ttl).then(|| "the last answer is out of date".to_owned())
}

/// What settling a user's route decided.
pub(crate) struct Settled {
    pub(crate) backend: Backend,
    pub(crate) notices: Vec<Notice>,
}

async fn on_store<T, F>(store: &Arc<dyn Store>, f: F) -> SideResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, exsync_store::StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    let failed =
        |e: String| SideError::new(SideErrorKind::Transient, format!("state database: {e}"));
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))
}

/// The backend serving `user` now: the stored answer while it holds, else a fresh lookup
/// (stored, unless in a dry run), else the stale answer with a notice; a user never located
/// whose lookup fails gets an error naming why and what to do.
pub(crate) async fn settle(
    auto: &AutoRouting,
    user: &UserKey,
    store: &Arc<dyn Store>,
    recheck: bool,
    dry_run: bool,
    now: DateTime<Utc>,
) -> SideResult<Settled> {
    let key = user.clone();
    let cached = on_store(store, move |s| s.mailbox_route(&key)).await?;
    let Some(why) = due(cached.as_ref(), now, auto.ttl, recheck) else {
        let backend = cached
            .as_ref()
            .and_then(|r| Backend::parse(&r.backend))
            .unwrap_or_default();
        return Ok(Settled {
            backend,
            notices: Vec::new(),
        });
    };
    let before = cached.as_ref().and_then(|r| Backend::parse(&r.backend));
    match auto.locator.locate(user).await {
        Ok(found) => {
            tracing::info!(user = %user, backend = %found.backend, evidence = %found.evidence, why = %why, "Mailbox located");
            let route = MailboxRoute {
                user: user.clone(),
                backend: found.backend.as_str().to_owned(),
                evidence: found.evidence.clone(),
                checked_at: now,
                recheck: None,
            };
            if !dry_run {
                on_store(store, move |s| s.put_mailbox_route(&route)).await?;
            }
            let mut notices = Vec::new();
            if let Some(from) = before.filter(|b| *b != found.backend) {
                notices.push(Notice {
                    code: "mailbox_located".to_owned(),
                    message: format!(
                        "Autodiscover now places the mailbox on {} ({}); it was on {from}.",
                        found.backend, found.evidence
                    ),
                    fix: "Nothing to do: the mailbox is synced through its new backend, its \
                          links kept."
                        .to_owned(),
                });
            }
            Ok(Settled {
                backend: found.backend,
                notices,
            })
        }
        Err(reason) => {
            tracing::warn!(user = %user, reason = %reason, "Mailbox could not be located");
            match (cached, before) {
                (Some(route), Some(backend)) => Ok(Settled {
                    backend,
                    notices: vec![Notice {
                        code: "mailbox_not_located".to_owned(),
                        message: format!(
                            "Autodiscover could not be asked where the mailbox is ({reason}); \
                             it stays on {backend} as found {} ({}).",
                            route.checked_at.format("%Y-%m-%d %H:%M UTC"),
                            route.evidence
                        ),
                        fix: format!(
                            "Check that on-premises Autodiscover answers for {user} (`exsync \
                             check --user {user}`); it is asked again next pass."
                        ),
                    }],
                }),
                _ => Err(SideError::new(
                    SideErrorKind::User,
                    format!("{user}'s mailbox could not be located (backend auto): {reason}"),
                )
                .with_remedy(format!(
                    "check that on-premises Autodiscover answers for {user} (`exsync check \
                     --user {user}`), or name the mailbox's backend in [exchange_online] \
                     (`users` for online) instead of locating it automatically"
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    /// Answers each lookup with the next scripted answer, and counts them.
    struct Scripted(Mutex<Vec<Result<Located, String>>>);

    impl Locate for Scripted {
        fn locate<'a>(&'a self, _user: &'a UserKey) -> LocateFuture<'a> {
            let next = self
                .0
                .lock()
                .unwrap()
                .pop()
                .unwrap_or_else(|| Err("no answer scripted".to_owned()));
            Box::pin(std::future::ready(next))
        }
    }

    fn auto(answers: Vec<Result<Located, String>>) -> (AutoRouting, Arc<Scripted>) {
        let locator = Arc::new(Scripted(Mutex::new(answers)));
        (
            AutoRouting::new(Arc::clone(&locator) as Arc<dyn Locate>),
            locator,
        )
    }

    fn left(locator: &Scripted) -> usize {
        locator.0.lock().unwrap().len()
    }

    fn online() -> Located {
        Located {
            backend: Backend::Graph,
            evidence: "Autodiscover: routing address ann@contoso.mail.onmicrosoft.com".into(),
        }
    }

    /// `route_ttl_hours` decides when a stored answer is asked again: after six hours here, where
    /// the default would still reuse it.
    #[tokio::test]
    async fn a_configured_route_ttl_decides_when_autodiscover_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(exsync_store::SqliteStore::open(dir.path().join("state.db")).unwrap());
        let ann = UserKey::new("ann@contoso.test");
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let text = "[exchange]\nservice_account = \"svc@contoso.test\"\n[crm]\nclient_id = \"a\"\n\
                    username = \"int@contoso.test\"\n[configurations.a]\nusers = [\"ann@contoso.test\"]\n\
                    [exchange_online]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"c\"\n\
                    auto = true\nroute_ttl_hours = 6\n";
        let config = exsync_core::config::parse(text, std::path::Path::new("exsync.toml")).unwrap();
        let online_config = config.exchange_online.unwrap();
        let locator = Arc::new(Scripted(Mutex::new(vec![Ok(online()), Ok(online())])));
        let routing =
            AutoRouting::configured(Arc::clone(&locator) as Arc<dyn Locate>, &online_config);
        settle(&routing, &ann, &store, false, false, at)
            .await
            .unwrap();
        assert_eq!(left(&locator), 1);
        let five = at + chrono::Duration::hours(5);
        settle(&routing, &ann, &store, false, false, five)
            .await
            .unwrap();
        assert_eq!(left(&locator), 1, "within six hours the answer holds");
        let seven = at + chrono::Duration::hours(7);
        let (default_routing, _) = auto(Vec::new());
        let cached = store.mailbox_route(&ann).unwrap();
        assert_eq!(
            due(cached.as_ref(), seven, default_routing.ttl, false),
            None,
            "the default would still reuse it"
        );
        settle(&routing, &ann, &store, false, false, seven)
            .await
            .unwrap();
        assert_eq!(
            left(&locator),
            0,
            "after six hours Autodiscover is asked again"
        );
    }

    /// The first answer is stored and reused for a day; a failed lookup then falls back to it
    /// with a notice; a user never located whose lookup fails gets the reason and the fix.
    #[tokio::test]
    async fn a_lookup_is_stored_reused_and_its_failure_is_never_silent() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(exsync_store::SqliteStore::open(dir.path().join("state.db")).unwrap());
        let ann = UserKey::new("ann@contoso.test");
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();

        // Scripted answers are taken from the end.
        let (routing, locator) = auto(vec![
            Err("Autodiscover for ann@contoso.test failed: no candidate answered".into()),
            Ok(online()),
        ]);
        let first = settle(&routing, &ann, &store, false, false, at)
            .await
            .unwrap();
        assert_eq!((first.backend, first.notices.len()), (Backend::Graph, 0));
        let stored = store.mailbox_route(&ann).unwrap().unwrap();
        assert_eq!((stored.backend.as_str(), stored.checked_at), ("graph", at));

        // Within the day nothing is asked.
        let later = settle(
            &routing,
            &ann,
            &store,
            false,
            false,
            at + chrono::Duration::hours(2),
        )
        .await
        .unwrap();
        assert_eq!((later.backend, left(&locator)), (Backend::Graph, 1));

        // A day on, the lookup fails: the stored answer holds, and the admin hears why.
        let next_day = at + chrono::Duration::days(1);
        let stale = settle(&routing, &ann, &store, false, false, next_day)
            .await
            .unwrap();
        assert_eq!(stale.backend, Backend::Graph);
        assert_eq!(stale.notices.len(), 1);
        assert_eq!(stale.notices[0].code, "mailbox_not_located");
        assert!(
            stale.notices[0].message.contains("no candidate answered")
                && stale.notices[0].message.contains("it stays on graph"),
            "{:?}",
            stale.notices[0]
        );
        // Still due: the next pass asks again.
        assert_eq!(store.mailbox_route(&ann).unwrap().unwrap().checked_at, at);

        // Never located and the lookup fails: the user's pass fails with the reason and fix.
        let bob = UserKey::new("bob@contoso.test");
        let (routing, _) = auto(vec![Err(
            "the domain contoso.test is not in the allow-list".into(),
        )]);
        let failed = settle(&routing, &bob, &store, false, false, at)
            .await
            .err()
            .unwrap();
        assert_eq!(failed.kind, SideErrorKind::User);
        let text = failed.to_string();
        assert!(
            text.contains("bob@contoso.test's mailbox could not be located (backend auto): the domain contoso.test is not in the allow-list")
                && text.contains("(fix: check that on-premises Autodiscover answers for bob@contoso.test"),
            "{text}"
        );
        assert_eq!(store.mailbox_route(&bob).unwrap(), None);

        // A mailbox that moved: the new answer replaces the old, with a notice.
        let (routing, _) = auto(vec![Ok(Located {
            backend: Backend::Ews,
            evidence: "Autodiscover: EWS URL https://mail.contoso.test/EWS/Exchange.asmx".into(),
        })]);
        let back = settle(&routing, &ann, &store, true, false, next_day)
            .await
            .unwrap();
        assert_eq!(back.backend, Backend::Ews);
        assert_eq!(back.notices[0].code, "mailbox_located");
        assert!(
            back.notices[0]
                .message
                .contains("now places the mailbox on ews")
                && back.notices[0].message.contains("it was on graph"),
            "{:?}",
            back.notices[0]
        );
        assert_eq!(store.mailbox_route(&ann).unwrap().unwrap().backend, "ews");

        // A dry run looks, and stores nothing.
        let cy = UserKey::new("cy@contoso.test");
        let (routing, _) = auto(vec![Ok(online())]);
        let dry = settle(&routing, &cy, &store, false, true, at)
            .await
            .unwrap();
        assert_eq!(dry.backend, Backend::Graph);
        assert_eq!(store.mailbox_route(&cy).unwrap(), None);
    }

    fn route(backend: &str, at: DateTime<Utc>, recheck: Option<&str>) -> MailboxRoute {
        MailboxRoute {
            user: UserKey::new("ann@contoso.test"),
            backend: backend.to_owned(),
            evidence: "ann@contoso.mail.onmicrosoft.com".to_owned(),
            checked_at: at,
            recheck: recheck.map(str::to_owned),
        }
    }

    #[test]
    fn an_answer_holds_for_its_ttl_unless_the_mailbox_went_missing() {
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let day = chrono::Duration::days(1);
        let fresh = route("graph", at, None);
        assert_eq!(
            due(Some(&fresh), at + chrono::Duration::hours(23), day, false),
            None
        );
        assert_eq!(
            due(Some(&fresh), at + day, day, false).as_deref(),
            Some("the last answer is out of date")
        );
        assert_eq!(
            due(None, at, day, false).as_deref(),
            Some("never looked up")
        );
        assert_eq!(
            due(Some(&fresh), at, day, true).as_deref(),
            Some("the backend did not find the mailbox")
        );
        let marked = route("ews", at, Some("Exchange: ErrorNonExistentMailbox"));
        assert_eq!(
            due(Some(&marked), at, day, false).as_deref(),
            Some("Exchange: ErrorNonExistentMailbox")
        );
        let unknown = route("imap", at, None);
        assert!(due(Some(&unknown), at, day, false).is_some());
    }
}
