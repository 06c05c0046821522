//! Autodiscover: POX (`autodiscover.xml`) and SOAP (`autodiscover.svc`, GetUserSettings),
//! with per-mailbox RedirectAddr / RedirectUrl answers set through the control API.

use super::store::State;
use super::xml::{escape, Element};

const NS_AD: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";
const SCHEMAS: &str = "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2016";

/// What one mailbox's Autodiscover answer is.
enum Answer {
    Settings {
        display_name: String,
        address: String,
    },
    RedirectAddr(String),
    RedirectUrl(String),
    Unknown,
}

fn answer(state: &State, email: &str) -> Answer {
    match state.mailbox(email.trim()) {
        None => Answer::Unknown,
        Some(mb) => {
            if let Some(a) = &mb.redirect_addr {
                Answer::RedirectAddr(a.clone())
            } else if let Some(u) = &mb.redirect_url {
                Answer::RedirectUrl(u.clone())
            } else {
                Answer::Settings {
                    display_name: mb.display_name.clone(),
                    address: mb.address.clone(),
                }
            }
        }
    }
}

/// SOAP GetUserSettings.
pub(crate) fn soap(state: &State, request: &Element, ews_url: &str) -> String {
    let msg = request.path(&["Body", "GetUserSettingsRequestMessage", "Request"]);
    let users: Vec<String> = msg
        .and_then(|r| r.child("Users"))
        .map(|u| {
            u.children
                .iter()
                .filter_map(|x| x.child_text("Mailbox"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let wanted: Vec<String> = msg
        .and_then(|r| r.child("RequestedSettings"))
        .map(|s| {
            s.children
                .iter()
                .map(|x| x.text.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut responses = String::new();
    for u in &users {
        responses.push_str("<UserResponse>");
        match answer(state, u) {
            Answer::Unknown => responses.push_str(
                "<ErrorCode>InvalidUser</ErrorCode><ErrorMessage>Invalid user.</ErrorMessage><RedirectTarget i:nil=\"true\"/><UserSettingErrors/><UserSettings/>",
            ),
            Answer::RedirectAddr(a) => responses.push_str(&format!(
                "<ErrorCode>RedirectAddress</ErrorCode><ErrorMessage>Redirection address.</ErrorMessage><RedirectTarget>{}</RedirectTarget><UserSettingErrors/><UserSettings/>",
                escape(&a)
            )),
            Answer::RedirectUrl(url) => responses.push_str(&format!(
                "<ErrorCode>RedirectUrl</ErrorCode><ErrorMessage>Redirection URL.</ErrorMessage><RedirectTarget>{}</RedirectTarget><UserSettingErrors/><UserSettings/>",
                escape(&url)
            )),
            Answer::Settings {
                display_name,
                address,
            } => {
                responses.push_str(
                    "<ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage><RedirectTarget i:nil=\"true\"/>",
                );
                let mut settings = String::new();
                let mut errors = String::new();
                for name in &wanted {
                    let value = match name.as_str() {
                        "InternalEwsUrl" | "ExternalEwsUrl" => Some(ews_url.to_string()),
                        "UserDisplayName" => Some(display_name.clone()),
                        "AutoDiscoverSMTPAddress" => Some(address.clone()),
                        "EwsSupportedSchemas" => Some(SCHEMAS.to_string()),
                        "CasVersion" => Some("15.02.1544.004".to_string()),
                        "ExternalEwsVersion" => Some("15.02.1544.004".to_string()),
                        "UserDeploymentId" => Some("0b0c6a4f-0000-4000-8000-000000000001".into()),
                        _ => None,
                    };
                    match value {
                        Some(v) => settings.push_str(&format!(
                            "<UserSetting i:type=\"StringSetting\"><Name>{}</Name><Value>{}</Value></UserSetting>",
                            escape(name),
                            escape(&v)
                        )),
                        None => errors.push_str(&format!(
                            "<UserSettingError><ErrorCode>SettingIsNotAvailable</ErrorCode><ErrorMessage>Setting is not available.</ErrorMessage><SettingName>{}</SettingName></UserSettingError>",
                            escape(name)
                        )),
                    }
                }
                responses.push_str(&format!(
                    "<UserSettingErrors>{errors}</UserSettingErrors><UserSettings>{settings}</UserSettings>"
                ));
            }
        }
        responses.push_str("</UserResponse>");
    }
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse</a:Action><h:ServerVersionInfo xmlns:h="{NS_AD}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><h:MajorVersion>15</h:MajorVersion><h:MinorVersion>2</h:MinorVersion><h:MajorBuildNumber>1544</h:MajorBuildNumber><h:MinorBuildNumber>4</h:MinorBuildNumber><h:Version>Exchange2015</h:Version></h:ServerVersionInfo></s:Header><s:Body><GetUserSettingsResponseMessage xmlns="{NS_AD}"><Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses>{responses}</UserResponses></Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>"#
    )
}

/// POX autodiscover.xml.
pub(crate) fn pox(state: &State, request: &Element, ews_url: &str) -> String {
    let email = request
        .path(&["Request", "EMailAddress"])
        .map(|e| e.text.trim().to_string())
        .unwrap_or_default();
    let inner = match answer(state, &email) {
        Answer::Unknown => r#"<Error Time="00:00:00" Id="1"><ErrorCode>500</ErrorCode><Message>The email address can't be found.</Message><DebugData/></Error>"#.to_string(),
        Answer::RedirectAddr(a) => format!(
            "<Account><AccountType>email</AccountType><Action>redirectAddr</Action><RedirectAddr>{}</RedirectAddr></Account>",
            escape(&a)
        ),
        Answer::RedirectUrl(u) => format!(
            "<Account><AccountType>email</AccountType><Action>redirectUrl</Action><RedirectUrl>{}</RedirectUrl></Account>",
            escape(&u)
        ),
        Answer::Settings {
            display_name,
            address,
        } => format!(
            "<User><DisplayName>{}</DisplayName><AutoDiscoverSMTPAddress>{}</AutoDiscoverSMTPAddress></User><Account><AccountType>email</AccountType><Action>settings</Action><Protocol><Type>EXCH</Type><EwsUrl>{u}</EwsUrl></Protocol><Protocol><Type>EXPR</Type><EwsUrl>{u}</EwsUrl></Protocol></Account>",
            escape(&display_name),
            escape(&address),
            u = escape(ews_url)
        ),
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">{inner}</Response></Autodiscover>"#
    )
}
