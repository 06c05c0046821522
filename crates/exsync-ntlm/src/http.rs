//! The HTTP carriage of NTLM tokens: `Authorization: NTLM <base64>` from the client and
//! `WWW-Authenticate: NTLM <base64>` from the server.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::NtlmError;

/// A parsed NTLM header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtlmHeader {
    /// Bare `NTLM`: the server offers the scheme (first 401).
    Offer,
    /// `NTLM <token>`: a message of the handshake.
    Token(Vec<u8>),
}

/// `NTLM <base64(token)>`, for either header.
pub fn header_value(token: &[u8]) -> String {
    format!("NTLM {}", STANDARD.encode(token))
}

/// Parses one `Authorization` or `WWW-Authenticate` value. A value for another scheme
/// (`Negotiate`, `Basic realm=…`) is `NotNtlmHeader`, so callers can scan several headers.
pub fn parse_header(value: &str) -> Result<NtlmHeader, NtlmError> {
    let value = value.trim();
    let (scheme, rest) = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) => (scheme, rest.trim()),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("NTLM") {
        return Err(NtlmError::NotNtlmHeader);
    }
    if rest.is_empty() {
        return Ok(NtlmHeader::Offer);
    }
    STANDARD
        .decode(rest)
        .map(NtlmHeader::Token)
        .map_err(|e| NtlmError::malformed(format!("NTLM header is not valid base64: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trip_and_other_schemes() {
        let value = header_value(b"NTLMSSP\0\x01");
        assert_eq!(value, "NTLM TlRMTVNTUAAB");
        assert_eq!(
            parse_header(&value).unwrap(),
            NtlmHeader::Token(b"NTLMSSP\0\x01".to_vec())
        );
        assert_eq!(parse_header(" ntlm ").unwrap(), NtlmHeader::Offer);
        assert_eq!(parse_header("Negotiate abc"), Err(NtlmError::NotNtlmHeader));
        assert_eq!(parse_header("NTLMx"), Err(NtlmError::NotNtlmHeader));
        assert!(matches!(
            parse_header("NTLM !!!"),
            Err(NtlmError::Malformed { .. })
        ));
    }
}
