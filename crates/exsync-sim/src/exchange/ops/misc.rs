//! ConvertId (clients use it to probe version and auth), ResolveNames, GetServerTimeZones.

use base64::Engine;

use super::{list, respond, Ctx, OpResult};
use crate::exchange::soap::{self, EwsError};
use crate::exchange::store::Id;
use crate::exchange::xml::{escape, Element};

/// Reads an id given in one of ConvertId's formats. EwsId, EwsLegacyId and OwaId are the
/// id string itself here (one encoding serves all three); EntryId and StoreId are the base64
/// of the store entry id, HexEntryId its hex digits, both in the AlternateId's Mailbox.
fn parse_alternate(format: &str, id: &str, mailbox: &str) -> Option<Id> {
    match format {
        "EntryId" | "StoreId" => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(id.trim())
                .ok()?;
            Id::from_entry_id(mailbox, &raw)
        }
        "HexEntryId" => {
            let hex = id.trim();
            if hex.len() % 2 != 0 || !hex.is_ascii() {
                return None;
            }
            let raw = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Id::from_entry_id(mailbox, &raw)
        }
        _ => Id::decode(id),
    }
}

fn format_alternate(format: &str, id: &Id) -> String {
    match format {
        "EntryId" | "StoreId" => base64::engine::general_purpose::STANDARD.encode(id.entry_id()),
        "HexEntryId" => id.entry_id().iter().map(|b| format!("{b:02X}")).collect(),
        _ => id.encode(),
    }
}

pub(crate) fn convert_id(_ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let dest = op.attr("DestinationFormat").unwrap_or("EwsId");
    let mut msgs = Vec::new();
    for a in list(op, "SourceIds") {
        let mailbox = a.attr("Mailbox").unwrap_or("");
        let format = a.attr("Format").unwrap_or("EwsId");
        msgs.push(
            match parse_alternate(format, a.attr("Id").unwrap_or(""), mailbox) {
                Some(id) => Ok(format!(
                    r#"<m:AlternateId xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="t:AlternateIdType" Format="{}" Id="{}" Mailbox="{}"/>"#,
                    escape(dest),
                    escape(&format_alternate(dest, &id)),
                    escape(mailbox)
                )),
                None => Err(EwsError::new("ErrorInvalidIdMalformed", "Id is malformed.")),
            },
        );
    }
    Ok(respond("ConvertId", msgs))
}

pub(crate) fn resolve_names(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let entry = op
        .child_text("UnresolvedEntry")
        .unwrap_or("")
        .trim_start_matches("smtp:")
        .trim_start_matches("SMTP:")
        .to_lowercase();
    // (name, address, MailboxType, contact ItemId): directory mailboxes first, then the
    // acting mailbox's own contacts, as Exchange's ResolveNames searches both
    // (SearchScope ActiveDirectoryContacts, the default).
    let mut hits: Vec<(String, String, &str, Option<String>)> = ctx
        .st
        .mailboxes
        .values()
        .filter(|m| {
            !entry.is_empty()
                && (m.address.to_lowercase().contains(&entry)
                    || m.display_name.to_lowercase().contains(&entry))
        })
        .map(|m| (m.display_name.clone(), m.address.clone(), "Mailbox", None))
        .collect();
    if !entry.is_empty() {
        if let Ok(mb) = ctx.mb() {
            for item in mb.items.values().filter(|i| i.kind == "Contact") {
                let text = |n: &str| item.prop_text(n).unwrap_or("").to_string();
                let name = match text("DisplayName") {
                    n if n.is_empty() => format!("{} {}", text("GivenName"), text("Surname"))
                        .trim()
                        .to_string(),
                    n => n,
                };
                let email = item
                    .prop("EmailAddresses")
                    .and_then(|e| e.children.iter().find(|c| !c.text.trim().is_empty()))
                    .map(|c| c.text.trim().to_string())
                    .unwrap_or_default();
                let matched = [&name, &email, &text("GivenName"), &text("Surname")]
                    .iter()
                    .any(|v| v.to_lowercase().contains(&entry));
                if matched && !email.is_empty() {
                    let id = crate::exchange::store::Id::Item {
                        mailbox: mb.key(),
                        id: item.id,
                    };
                    hits.push((name, email, "Contact", Some(id.encode())));
                }
            }
        }
    }
    if hits.is_empty() {
        return Ok(respond(
            "ResolveNames",
            vec![Err(EwsError::new(
                "ErrorNameResolutionNoResults",
                "No results were found.",
            ))],
        ));
    }
    let mut set = format!(
        r#"<m:ResolutionSet TotalItemsInView="{}" IncludesLastItemInRange="true">"#,
        hits.len()
    );
    for (name, addr, kind, id) in &hits {
        let id = id
            .as_ref()
            .map(|i| format!(r#"<t:ItemId Id="{}"/>"#, escape(i)))
            .unwrap_or_default();
        set.push_str(&format!(
            "<t:Resolution><t:Mailbox><t:Name>{}</t:Name><t:EmailAddress>{}</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>{kind}</t:MailboxType>{id}</t:Mailbox></t:Resolution>",
            escape(name),
            escape(addr)
        ));
    }
    set.push_str("</m:ResolutionSet>");
    let msg = if hits.len() > 1 {
        soap::warning_message(
            "ResolveNames",
            "ErrorNameResolutionMultipleResults",
            "Multiple results were found.",
            &set,
        )
    } else {
        soap::ok_message("ResolveNames", &set)
    };
    Ok(soap::response("ResolveNames", &[msg]))
}

/// The Windows zones the server lists, with Windows' display names: the common zones of
/// the Americas, Europe, Africa, Asia and Oceania (each also expands recurrences, see
/// `calendar::WINDOWS_ZONES`).
const ZONES: &[(&str, &str)] = &[
    ("Hawaiian Standard Time", "(UTC-10:00) Hawaii"),
    ("Alaskan Standard Time", "(UTC-09:00) Alaska"),
    (
        "Pacific Standard Time",
        "(UTC-08:00) Pacific Time (US & Canada)",
    ),
    ("US Mountain Standard Time", "(UTC-07:00) Arizona"),
    (
        "Mountain Standard Time",
        "(UTC-07:00) Mountain Time (US & Canada)",
    ),
    (
        "Central Standard Time",
        "(UTC-06:00) Central Time (US & Canada)",
    ),
    ("Canada Central Standard Time", "(UTC-06:00) Saskatchewan"),
    (
        "Eastern Standard Time",
        "(UTC-05:00) Eastern Time (US & Canada)",
    ),
    (
        "Atlantic Standard Time",
        "(UTC-04:00) Atlantic Time (Canada)",
    ),
    ("E. South America Standard Time", "(UTC-03:00) Brasilia"),
    ("UTC", "(UTC) Coordinated Universal Time"),
    (
        "GMT Standard Time",
        "(UTC+00:00) Dublin, Edinburgh, Lisbon, London",
    ),
    (
        "W. Europe Standard Time",
        "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
    ),
    (
        "Central Europe Standard Time",
        "(UTC+01:00) Belgrade, Bratislava, Budapest, Ljubljana, Prague",
    ),
    (
        "Romance Standard Time",
        "(UTC+01:00) Brussels, Copenhagen, Madrid, Paris",
    ),
    (
        "Central European Standard Time",
        "(UTC+01:00) Sarajevo, Skopje, Warsaw, Zagreb",
    ),
    ("E. Europe Standard Time", "(UTC+02:00) Chisinau"),
    (
        "FLE Standard Time",
        "(UTC+02:00) Helsinki, Kyiv, Riga, Sofia, Tallinn, Vilnius",
    ),
    ("Israel Standard Time", "(UTC+02:00) Jerusalem"),
    ("South Africa Standard Time", "(UTC+02:00) Harare, Pretoria"),
    ("Turkey Standard Time", "(UTC+03:00) Istanbul"),
    (
        "Russian Standard Time",
        "(UTC+03:00) Moscow, St. Petersburg",
    ),
    ("Arabian Standard Time", "(UTC+04:00) Abu Dhabi, Muscat"),
    (
        "India Standard Time",
        "(UTC+05:30) Chennai, Kolkata, Mumbai, New Delhi",
    ),
    (
        "SE Asia Standard Time",
        "(UTC+07:00) Bangkok, Hanoi, Jakarta",
    ),
    (
        "China Standard Time",
        "(UTC+08:00) Beijing, Chongqing, Hong Kong, Urumqi",
    ),
    (
        "Singapore Standard Time",
        "(UTC+08:00) Kuala Lumpur, Singapore",
    ),
    ("W. Australia Standard Time", "(UTC+08:00) Perth"),
    ("Tokyo Standard Time", "(UTC+09:00) Osaka, Sapporo, Tokyo"),
    ("Korea Standard Time", "(UTC+09:00) Seoul"),
    (
        "AUS Eastern Standard Time",
        "(UTC+10:00) Canberra, Melbourne, Sydney",
    ),
    (
        "New Zealand Standard Time",
        "(UTC+12:00) Auckland, Wellington",
    ),
];

pub(crate) fn get_server_time_zones(_ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let wanted: Vec<String> = op
        .child("Ids")
        .map(|ids| {
            ids.children
                .iter()
                .map(|i| i.text.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut s = String::from("<m:TimeZoneDefinitions>");
    for (id, name) in ZONES {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == id) {
            continue;
        }
        s.push_str(&format!(
            r#"<t:TimeZoneDefinition Id="{}" Name="{}"/>"#,
            escape(id),
            escape(name)
        ));
    }
    s.push_str("</m:TimeZoneDefinitions>");
    Ok(respond("GetServerTimeZones", vec![Ok(s)]))
}
