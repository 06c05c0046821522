//! ConvertId (clients use it to probe version and auth), ResolveNames, GetServerTimeZones.

use super::{list, respond, Ctx, OpResult};
use crate::exchange::soap::{self, EwsError};
use crate::exchange::store::Id;
use crate::exchange::xml::{escape, Element};

pub fn convert_id(_ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let dest = op.attr("DestinationFormat").unwrap_or("EwsId");
    let mut msgs = Vec::new();
    for a in list(op, "SourceIds") {
        let id = a.attr("Id").unwrap_or("");
        msgs.push(match Id::decode(id) {
            // Our ids have one form; every format maps to the same opaque string.
            Some(_) => Ok(format!(
                r#"<m:AlternateId xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="t:AlternateIdType" Format="{}" Id="{}" Mailbox="{}"/>"#,
                escape(dest),
                escape(id),
                escape(a.attr("Mailbox").unwrap_or(""))
            )),
            None => Err(EwsError::new("ErrorInvalidIdMalformed", "Id is malformed.")),
        });
    }
    Ok(respond("ConvertId", msgs))
}

pub fn resolve_names(ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
    let entry = op
        .child_text("UnresolvedEntry")
        .unwrap_or("")
        .trim_start_matches("smtp:")
        .trim_start_matches("SMTP:")
        .to_lowercase();
    let hits: Vec<(String, String)> = ctx
        .st
        .mailboxes
        .values()
        .filter(|m| {
            !entry.is_empty()
                && (m.address.to_lowercase().contains(&entry)
                    || m.display_name.to_lowercase().contains(&entry))
        })
        .map(|m| (m.display_name.clone(), m.address.clone()))
        .collect();
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
    for (name, addr) in &hits {
        set.push_str(&format!(
            "<t:Resolution><t:Mailbox><t:Name>{}</t:Name><t:EmailAddress>{}</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox></t:Resolution>",
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

const ZONES: &[(&str, &str)] = &[
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
        "Eastern Standard Time",
        "(UTC-05:00) Eastern Time (US & Canada)",
    ),
    (
        "Pacific Standard Time",
        "(UTC-08:00) Pacific Time (US & Canada)",
    ),
];

pub fn get_server_time_zones(_ctx: &mut Ctx<'_>, op: &Element) -> OpResult {
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
