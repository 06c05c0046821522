//! Items made "by a person in Outlook": without our tag, in the shape the mailbox's own server
//! stores them, on whichever backend serves the user (EWS XML through the Exchange simulator's
//! control API, Graph JSON through the Graph simulator's), so one test body runs on both.

use anyhow::{anyhow, bail, Context, Result};
use chrono::{NaiveDate, TimeZone};
use exsync_core::{Contact, Event, ItemKind};
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::sides::MailboxSide;
use exsync_graph::mapping::{write_contact, write_event};
use exsync_graph::GraphRequest;
use serde_json::{json, Value};

use super::{Lab, LabUser};

/// An all-day event as Outlook keeps it for a mailbox in an IANA zone: local midnights, and the
/// zone's Windows id.
struct AllDay<'a> {
    subject: &'a str,
    first: NaiveDate,
    last: NaiveDate,
    zone: chrono_tz::Tz,
    windows: &'static str,
}

impl AllDay<'_> {
    /// Local midnight of `date` in the event's zone, as a UTC instant.
    fn midnight_utc(&self, date: NaiveDate) -> Result<String> {
        let local = self
            .zone
            .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .with_context(|| format!("no midnight on {date} in {}", self.zone))?;
        Ok(local
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string())
    }

    /// EWS: two UTC instants, each with the zone it is a midnight in.
    fn ews_xml(&self) -> Result<String> {
        let mut w = exsync_ews::XmlWriter::new();
        w.open("t:CalendarItem", &[])
            .text("t:Subject", self.subject)
            .text("t:Start", &self.midnight_utc(self.first)?)
            .text("t:End", &self.midnight_utc(self.last)?)
            .text("t:IsAllDayEvent", "true")
            .empty("t:StartTimeZone", &[("Id", self.windows)])
            .empty("t:EndTimeZone", &[("Id", self.windows)])
            .close("t:CalendarItem");
        Ok(w.finish())
    }

    /// Graph: `isAllDay` with wall-clock midnights in the event's own zone.
    fn graph_json(&self) -> Value {
        let midnight = |date: NaiveDate| {
            json!({
                "dateTime": format!("{}T00:00:00.0000000", date.format("%Y-%m-%d")),
                "timeZone": self.windows,
            })
        };
        json!({
            "subject": self.subject,
            "isAllDay": true,
            "start": midnight(self.first),
            "end": midnight(self.last),
        })
    }
}

impl Lab {
    /// Makes `contact` in the user's sync folder as a person in Outlook would, without our
    /// tag, wherever the lab's service reaches the mailbox: over Graph for a user online, else
    /// through the Exchange simulator.
    pub async fn outlook_contact(&self, user: &LabUser, contact: &Contact) -> Result<()> {
        if self.syncer.exchange.backend(&user.key) == Backend::Graph {
            let Some(client) = &self.graph else {
                bail!("the lab has no Exchange Online (LabOptions::exchange_online)");
            };
            let base = format!("/users/{}", user.key.as_str());
            let folder = self.online_folder(client, &base).await?;
            client
                .send(
                    GraphRequest::new(
                        reqwest::Method::POST,
                        format!("{base}/contactFolders/{folder}/contacts"),
                    )
                    .json(write_contact(contact, None)),
                )
                .await
                .with_context(|| format!("making an Outlook contact for {}", user.key))?;
            return Ok(());
        }
        let mut w = exsync_ews::XmlWriter::new();
        exsync_ews::write_contact(&mut w, contact, None);
        self.ews_item(user, ItemKind::Contact, w.finish())
            .await
            .with_context(|| format!("making an Outlook contact for {}", user.key))
    }

    /// Makes `event` in the user's calendar as a person in Outlook would, without our tag, on
    /// the backend that serves the user. Made through the simulators' control APIs, so it
    /// counts as none of the requests a test measures.
    pub async fn outlook_event(&self, user: &LabUser, event: &Event) -> Result<()> {
        let made = if self.syncer.exchange.backend(&user.key) == Backend::Graph {
            self.graph_event(user, write_event(event, None)).await
        } else {
            let mut w = exsync_ews::XmlWriter::new();
            exsync_ews::write_event(&mut w, event, None);
            self.ews_item(user, ItemKind::Event, w.finish()).await
        };
        made.with_context(|| format!("making an Outlook event for {}", user.key))
    }

    /// Creates an all-day event in the user's Outlook calendar as Outlook does for a mailbox
    /// in the IANA zone `zone`: from local midnight of `first` to local midnight `days` days
    /// later in that zone, and without our tag. On premises that is two UTC instants with the
    /// zone's Windows id as start and end zone; online, `isAllDay` with the midnights as
    /// wall-clock times in the zone.
    pub async fn all_day_in_outlook(
        &self,
        user: &LabUser,
        subject: &str,
        first: NaiveDate,
        days: u32,
        zone: &str,
    ) -> Result<()> {
        let event = AllDay {
            subject,
            first,
            last: first
                .checked_add_days(chrono::Days::new(u64::from(days)))
                .with_context(|| format!("{days} days after {first}"))?,
            zone: zone.parse().map_err(|e| anyhow!("zone {zone:?}: {e}"))?,
            windows: exsync_ews::testing::iana_to_windows(zone)
                .with_context(|| format!("no Windows zone for {zone}"))?,
        };
        let made = if self.syncer.exchange.backend(&user.key) == Backend::Graph {
            self.graph_event(user, event.graph_json()).await
        } else {
            self.ews_item(user, ItemKind::Event, event.ews_xml()?).await
        };
        made.with_context(|| format!("creating an all-day event in {}", user.key))
    }

    /// Puts an EWS item (`t:Contact` or `t:CalendarItem` XML) in the user's folder for `kind`
    /// through the Exchange simulator's control API.
    async fn ews_item(&self, user: &LabUser, kind: ItemKind, xml: String) -> Result<()> {
        let (_, folder) = self
            .syncer
            .exchange
            .folder_of(&user.key, kind)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        self.exchange_control(
            reqwest::Method::POST,
            "/items",
            &json!({ "mailbox": user.key.as_str(), "folder": folder.id, "xml": xml }),
        )
        .await?;
        Ok(())
    }

    /// Puts a Graph event (JSON as a POST to `/events` takes it) in the user's primary
    /// calendar through the Graph simulator's control API, which stores it as that POST would.
    async fn graph_event(&self, user: &LabUser, event: Value) -> Result<()> {
        let path = format!("/mailboxes/{}/events", user.key.as_str());
        self.graph_control(reqwest::Method::POST, &path, &event)
            .await?;
        Ok(())
    }
}
