//! The SOAP envelope every call travels in (with the impersonation headers) and the generic
//! parts of every response: faults, `ResponseMessages`, response classes and codes.

use std::time::Duration;

use crate::error::{classify, remediation, CodeClass, EwsError, ResponseError};
use crate::xml::{escape, parse, Element};

pub(crate) const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const NS_TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub(crate) const NS_MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// The oldest version we support; every later server accepts it.
pub(crate) const SERVER_VERSION: &str = "Exchange2013_SP1";

/// The request versions EWS knows (`ExchangeVersionType`), oldest first.
const VERSIONS: [&str; 8] = [
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2016",
];

/// Whether a request declaring version `requested` may use what EWS added in `since`
/// (a schema element, a distinguished folder name). An unknown name on either side answers
/// no: better to leave a folder out than to send a request the server rejects whole.
pub(crate) fn version_reaches(requested: &str, since: &str) -> bool {
    let position = |v: &str| VERSIONS.iter().position(|known| *known == v);
    matches!((position(requested), position(since)), (Some(r), Some(s)) if r >= s)
}

/// Wraps an operation element (written with the `m:` and `t:` prefixes) in an envelope that
/// impersonates `mailbox`.
pub fn envelope(mailbox: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<soap:Envelope xmlns:soap=\"{NS_SOAP}\" xmlns:t=\"{NS_TYPES}\" xmlns:m=\"{NS_MESSAGES}\">\
<soap:Header>\
<t:RequestServerVersion Version=\"{SERVER_VERSION}\"/>\
<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{}</t:PrimarySmtpAddress>\
</t:ConnectingSID></t:ExchangeImpersonation>\
</soap:Header>\
<soap:Body>{body}</soap:Body>\
</soap:Envelope>",
        escape(mailbox)
    )
}

/// Who is asking for whom: used to turn per-user codes into errors with remediation.
#[derive(Debug, Clone)]
pub(crate) struct CallContext<'a> {
    pub host: &'a str,
    pub service_account: &'a str,
    pub mailbox: &'a str,
    pub operation: &'static str,
}

impl CallContext<'_> {
    /// The error for a failed operation-level (not per-item) response.
    pub(crate) fn error(&self, error: ResponseError) -> EwsError {
        match classify(&error.code) {
            CodeClass::Mailbox => EwsError::Mailbox {
                mailbox: self.mailbox.to_owned(),
                remediation: remediation(&error.code, self.service_account, self.mailbox)
                    .unwrap_or_else(|| "see the Exchange documentation for this code".into()),
                error,
            },
            CodeClass::Throttled if error.code == "ErrorServerBusy" => EwsError::Throttled {
                back_off: error.back_off.unwrap_or(Duration::from_secs(60)),
            },
            CodeClass::Throttled => EwsError::Throttled {
                back_off: error.back_off.unwrap_or(Duration::from_secs(1)),
            },
            _ if error.code == "ErrorInvalidSyncStateData" => EwsError::InvalidSyncState,
            _ => EwsError::Response {
                operation: self.operation,
                error,
            },
        }
    }
}

/// Reads a `ResponseCode`/`MessageText`/`MessageXml` triple from a response message or a fault
/// detail.
fn response_error(el: &Element, fallback_message: &str) -> ResponseError {
    let code = el
        .child_text("ResponseCode")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or("ErrorInternalServerError")
        .to_owned();
    let message = el
        .child_text("MessageText")
        .or_else(|| el.child_text("Message"))
        .unwrap_or(fallback_message)
        .trim()
        .to_owned();
    let back_off = el.child("MessageXml").and_then(|xml| {
        xml.children
            .iter()
            .filter(|v| v.name == "Value")
            .find(|v| v.attr("Name") == Some("BackOffMilliseconds"))
            .and_then(|v| v.text.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
    });
    ResponseError {
        code,
        message,
        back_off,
    }
}

/// Parses a response document and returns the operation's response element (the child of
/// `soap:Body`), or the fault as an error.
#[cfg(test)]
pub(crate) fn parse_body(ctx: &CallContext<'_>, xml: &str) -> Result<Element, EwsError> {
    parse_envelope(ctx, xml).map(|(body, _)| body)
}

/// The server's `ServerVersionInfo` header, as `15.2.1544.4 (V2017_07_11)`. The server's text
/// is kept to digits, and the schema name to letters, digits and `_`, so a hostile header
/// cannot put anything else into a report.
fn server_version(root: &Element) -> Option<String> {
    let info = root.child("Header")?.child("ServerVersionInfo")?;
    let number = |name: &str| -> Option<String> {
        let v = info.attr(name)?.trim();
        (!v.is_empty() && v.len() <= 10 && v.chars().all(|c| c.is_ascii_digit()))
            .then(|| v.to_owned())
    };
    let mut version = [
        "MajorVersion",
        "MinorVersion",
        "MajorBuildNumber",
        "MinorBuildNumber",
    ]
    .iter()
    .map(|n| number(n))
    .collect::<Option<Vec<String>>>()?
    .join(".");
    if let Some(schema) = info.attr("Version").map(str::trim).filter(|v| {
        !v.is_empty() && v.len() <= 40 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) {
        version.push_str(&format!(" ({schema})"));
    }
    Some(version)
}

/// [`parse_body`], with the server's version from the envelope's header when it sent one.
pub(crate) fn parse_envelope(
    ctx: &CallContext<'_>,
    xml: &str,
) -> Result<(Element, Option<String>), EwsError> {
    let root = parse(xml)?;
    if root.name != "Envelope" {
        return Err(EwsError::Protocol {
            host: ctx.host.to_owned(),
            reason: format!("expected a SOAP envelope, got <{}>", root.name),
        });
    }
    let body = root.child("Body").ok_or_else(|| EwsError::Protocol {
        host: ctx.host.to_owned(),
        reason: "SOAP envelope without a Body".into(),
    })?;
    let first = body.children.first().ok_or_else(|| EwsError::Protocol {
        host: ctx.host.to_owned(),
        reason: "empty SOAP Body".into(),
    })?;
    if first.name == "Fault" {
        let faultstring = first.child_text("faultstring").unwrap_or("").trim();
        let error = match first.child("detail") {
            Some(detail) => response_error(detail, faultstring),
            None => ResponseError {
                code: "ErrorInternalServerError".into(),
                message: faultstring.to_owned(),
                back_off: None,
            },
        };
        return Err(match classify(&error.code) {
            CodeClass::Mailbox | CodeClass::Throttled => ctx.error(error),
            _ => EwsError::Fault {
                host: ctx.host.to_owned(),
                error,
            },
        });
    }
    let version = server_version(&root);
    // The answer is taken out of the envelope, not copied: it is most of the document.
    let mut root = root;
    let answer = root
        .children
        .iter_mut()
        .find(|c| c.name == "Body")
        .and_then(|body| (!body.children.is_empty()).then(|| body.children.swap_remove(0)));
    answer
        .map(|answer| (answer, version))
        .ok_or_else(|| EwsError::Protocol {
            host: ctx.host.to_owned(),
            reason: "empty SOAP Body".into(),
        })
}

/// The `*ResponseMessage` elements of an operation response, in request order.
pub(crate) fn response_messages<'a>(
    ctx: &CallContext<'_>,
    response: &'a Element,
) -> Result<Vec<&'a Element>, EwsError> {
    let messages = response
        .child("ResponseMessages")
        .ok_or_else(|| EwsError::Protocol {
            host: ctx.host.to_owned(),
            reason: format!("<{}> has no ResponseMessages", response.name),
        })?;
    Ok(messages.children.iter().collect())
}

/// `Ok` for Success (and Warning, which EWS uses for partial results), the error otherwise.
pub(crate) fn message_status(message: &Element) -> Result<(), ResponseError> {
    match message.attr("ResponseClass") {
        Some("Success") | Some("Warning") => Ok(()),
        _ => Err(response_error(message, "")),
    }
}

/// The one response message of a single-target operation, with failures mapped to errors.
pub(crate) fn single_message<'a>(
    ctx: &CallContext<'_>,
    response: &'a Element,
) -> Result<&'a Element, EwsError> {
    let messages = response_messages(ctx, response)?;
    let first = messages
        .first()
        .copied()
        .ok_or_else(|| EwsError::Protocol {
            host: ctx.host.to_owned(),
            reason: "ResponseMessages is empty".into(),
        })?;
    message_status(first).map_err(|e| ctx.error(e))?;
    Ok(first)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ctx() -> CallContext<'static> {
        CallContext {
            host: "mail.contoso.test",
            service_account: "svc@contoso.test",
            mailbox: "ann@contoso.test",
            operation: "GetFolder",
        }
    }

    #[test]
    fn envelope_carries_impersonation_and_version() {
        let env = envelope("a&b@contoso.test", "<m:GetFolder/>");
        let root = parse(&env).unwrap();
        let header = root.child("Header").unwrap();
        assert_eq!(
            header
                .child("RequestServerVersion")
                .and_then(|v| v.attr("Version")),
            Some("Exchange2013_SP1")
        );
        assert_eq!(
            header
                .path(&[
                    "ExchangeImpersonation",
                    "ConnectingSID",
                    "PrimarySmtpAddress"
                ])
                .map(|e| e.text.as_str()),
            Some("a&b@contoso.test")
        );
    }

    #[test]
    fn versions_are_ordered() {
        assert!(version_reaches(SERVER_VERSION, "Exchange2010_SP1"));
        assert!(version_reaches("Exchange2010_SP1", "Exchange2010_SP1"));
        assert!(!version_reaches("Exchange2010", "Exchange2010_SP1"));
        assert!(!version_reaches("Exchange2007_SP1", "Exchange2010_SP1"));
        assert!(!version_reaches("Exchange2099", "Exchange2007"));
        assert!(!version_reaches("Exchange2016", "Exchange2099"));
    }

    #[test]
    fn the_server_version_is_read_from_the_header_and_kept_to_its_characters() {
        let doc = |info: &str| {
            format!(
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>{info}</s:Header><s:Body><m:GetFolderResponse xmlns:m="m"/></s:Body></s:Envelope>"#
            )
        };
        let real = doc(
            r#"<h:ServerVersionInfo xmlns:h="t" MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" Version="V2017_07_11"/>"#,
        );
        let (_, version) = parse_envelope(&ctx(), &real).unwrap();
        assert_eq!(version.as_deref(), Some("15.2.1544.4 (V2017_07_11)"));
        let hostile = doc(
            r#"<h:ServerVersionInfo xmlns:h="t" MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" Version="&lt;b&gt;x"/>"#,
        );
        let (_, version) = parse_envelope(&ctx(), &hostile).unwrap();
        assert_eq!(version.as_deref(), Some("15.2.1544.4"));
        let odd = doc(
            r#"<h:ServerVersionInfo xmlns:h="t" MajorVersion="15; rm" MinorVersion="2" MajorBuildNumber="1" MinorBuildNumber="4"/>"#,
        );
        assert_eq!(parse_envelope(&ctx(), &odd).unwrap().1, None);
        assert_eq!(parse_envelope(&ctx(), &doc("")).unwrap().1, None);
    }

    #[test]
    fn server_busy_fault_gives_back_off() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
<faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>
<detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>
<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>
<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml>
</detail></s:Fault></s:Body></s:Envelope>"#;
        match parse_body(&ctx(), xml) {
            Err(EwsError::Throttled { back_off }) => {
                assert_eq!(back_off, Duration::from_millis(297_749))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn impersonation_fault_is_a_per_user_error_with_remediation() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode>a:ErrorImpersonateUserDenied</faultcode><faultstring>The account does not have permission to impersonate the requested user.</faultstring>
<detail><e:ResponseCode xmlns:e="x">ErrorImpersonateUserDenied</e:ResponseCode></detail></s:Fault></s:Body></s:Envelope>"#;
        let err = parse_body(&ctx(), xml).unwrap_err();
        assert!(err.is_per_user());
        let text = err.to_string();
        assert!(text.contains("ann@contoso.test"), "{text}");
        assert!(text.contains("New-ManagementRoleAssignment"), "{text}");
    }

    #[test]
    fn error_response_message_is_typed() {
        let xml = r#"<s:Envelope xmlns:s="x"><s:Body><m:GetFolderResponse xmlns:m="m"><m:ResponseMessages>
<m:GetFolderResponseMessage ResponseClass="Error"><m:MessageText>No mailbox.</m:MessageText>
<m:ResponseCode>ErrorNonExistentMailbox</m:ResponseCode></m:GetFolderResponseMessage>
</m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>"#;
        let body = parse_body(&ctx(), xml).unwrap();
        match single_message(&ctx(), &body) {
            Err(EwsError::Mailbox { error, .. }) => {
                assert_eq!(error.code, "ErrorNonExistentMailbox")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(parse_body(&ctx(), "<html><body>oops</body></html>").is_err());
        assert!(parse_body(&ctx(), "not xml <").is_err());
    }
}
