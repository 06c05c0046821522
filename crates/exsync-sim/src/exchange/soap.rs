//! SOAP 1.1 framing of EWS requests and replies.

use super::xml::{escape, Element};

pub(crate) const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const NS_M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub(crate) const NS_ERR: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";
pub(crate) const NS_T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// What the simulator reports as its build: Exchange 2019 CU-level, schema V2017_07_11.
pub(crate) const SERVER_VERSION_HEADER: &str = r#"<h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" Version="V2017_07_11"/>"#;

/// The impersonation target named in the SOAP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Impersonation {
    Smtp(String),
    Principal(String),
    Sid(String),
}

#[derive(Debug)]
pub(crate) struct Request {
    pub impersonation: Option<Impersonation>,
    pub operation: Element,
}

/// Splits an envelope into header facts and the operation element.
pub(crate) fn parse_request(envelope: &Element) -> Result<Request, String> {
    if envelope.name != "Envelope" {
        return Err("the document is not a SOAP envelope".into());
    }
    let body = envelope
        .child("Body")
        .ok_or_else(|| "the envelope has no Body".to_string())?;
    let operation = body
        .children
        .first()
        .cloned()
        .ok_or_else(|| "the Body is empty".to_string())?;
    let header = envelope.child("Header");
    let impersonation = header
        .and_then(|h| h.path(&["ExchangeImpersonation", "ConnectingSID"]))
        .map(|sid| {
            if let Some(a) = sid.child_text("PrimarySmtpAddress") {
                Impersonation::Smtp(a.to_string())
            } else if let Some(a) = sid.child_text("SmtpAddress") {
                Impersonation::Smtp(a.to_string())
            } else if let Some(a) = sid.child_text("PrincipalName") {
                Impersonation::Principal(a.to_string())
            } else {
                Impersonation::Sid(sid.child_text("SID").unwrap_or("").to_string())
            }
        });
    Ok(Request {
        impersonation,
        operation,
    })
}

/// A full reply envelope around `body` (the child of soap:Body).
pub(crate) fn envelope(body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 600);
    s.push_str(r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>"#);
    s.push_str(SERVER_VERSION_HEADER);
    s.push_str("</s:Header><s:Body>");
    s.push_str(body);
    s.push_str("</s:Body></s:Envelope>");
    s
}

/// `<m:{op}Response>` holding response messages.
pub(crate) fn response(op: &str, messages: &[String]) -> String {
    let mut s =
        format!(r#"<m:{op}Response xmlns:m="{NS_M}" xmlns:t="{NS_T}"><m:ResponseMessages>"#);
    for m in messages {
        s.push_str(m);
    }
    s.push_str(&format!("</m:ResponseMessages></m:{op}Response>"));
    s
}

pub(crate) fn ok_message(op: &str, inner: &str) -> String {
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>{inner}</m:{op}ResponseMessage>"#
    )
}

pub(crate) fn warning_message(op: &str, code: &str, text: &str, inner: &str) -> String {
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Warning"><m:MessageText>{}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{inner}</m:{op}ResponseMessage>"#,
        escape(text)
    )
}

pub(crate) fn error_message(op: &str, err: &EwsError) -> String {
    let xml = match err.back_off_ms {
        Some(ms) => format!(
            r#"<m:MessageXml><t:Value Name="BackOffMilliseconds">{ms}</t:Value></m:MessageXml>"#
        ),
        None => String::new(),
    };
    // Item responses require their Items element even when the message is an error.
    let container = match op {
        "GetItem" | "CreateItem" | "UpdateItem" | "MoveItem" | "CopyItem" => "<m:Items/>",
        _ => "",
    };
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>{}</m:MessageText><m:ResponseCode>{}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{xml}{container}</m:{op}ResponseMessage>"#,
        escape(&err.text),
        err.code
    )
}

/// An EWS error, reported per response message or as a SOAP fault.
#[derive(Debug, Clone)]
pub(crate) struct EwsError {
    pub code: &'static str,
    pub text: String,
    pub back_off_ms: Option<u64>,
}

impl EwsError {
    pub(crate) fn new(code: &'static str, text: impl Into<String>) -> EwsError {
        EwsError {
            code,
            text: text.into(),
            back_off_ms: None,
        }
    }
}

/// A SOAP fault as Exchange sends it for request-level errors (HTTP 500).
pub(crate) fn fault(err: &EwsError) -> String {
    let detail_extra = match err.back_off_ms {
        Some(ms) => format!(
            r#"<t:MessageXml xmlns:t="{NS_T}"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml>"#
        ),
        None => String::new(),
    };
    let fault_code = format!("a:{}", err.code);
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{NS_SOAP}"><s:Body><s:Fault><faultcode xmlns:a="{NS_T}">{fault_code}</faultcode><faultstring xml:lang="en-US">{}</faultstring><detail><e:ResponseCode xmlns:e="{NS_ERR}">{}</e:ResponseCode><e:Message xmlns:e="{NS_ERR}">{}</e:Message>{detail_extra}</detail></s:Fault></s:Body></s:Envelope>"#,
        escape(&err.text),
        err.code,
        escape(&err.text)
    )
}
