//! Encoding and decoding of the three NTLM messages ([MS-NLMP] §2.2.1).
//!
//! Decoders take any bytes and return `Malformed` rather than panic; the acceptor feeds them
//! whatever arrives in an HTTP header.

use crate::av_pairs::AvPairs;
use crate::error::NtlmError;
use crate::flags::{NEGOTIATE_UNICODE, NEGOTIATE_VERSION};
use crate::wire::{
    check_header, field, field_offset, from_utf16le, slice, u32_at, utf16le, MessageWriter,
};

pub(crate) const NEGOTIATE: u32 = 1;
pub(crate) const CHALLENGE: u32 = 2;
pub(crate) const AUTHENTICATE: u32 = 3;

/// The VERSION structure we send: Windows 10.0 build 20348, NTLM revision 15. Servers only log it.
pub(crate) const OUR_VERSION: [u8; 8] = [10, 0, 0x7c, 0x4f, 0, 0, 0, 0x0f];

/// Where the MIC sits in an AUTHENTICATE message that has a VERSION before it.
pub(crate) const MIC_OFFSET: usize = 72;
const AUTHENTICATE_HEADER_WITH_MIC: usize = 88;
const AUTHENTICATE_HEADER_WITHOUT_MIC: usize = 72;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiate {
    pub flags: u32,
}

pub(crate) fn encode_negotiate(flags: u32) -> Vec<u8> {
    let mut writer = MessageWriter::new(NEGOTIATE, 40);
    writer.put_u32(12, flags | NEGOTIATE_VERSION);
    // Domain and workstation are left empty: both are optional and only leak information.
    for at in [16, 24] {
        writer.put_u32(at + 4, 40);
    }
    writer.put_bytes(32, &OUR_VERSION);
    writer.finish()
}

pub(crate) fn parse_negotiate(bytes: &[u8]) -> Result<Negotiate, NtlmError> {
    check_header(bytes, NEGOTIATE, 16)?;
    Ok(Negotiate {
        flags: u32_at(bytes, 12)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    pub target_info: AvPairs,
}

pub(crate) fn encode_challenge(
    flags: u32,
    server_challenge: &[u8; 8],
    target_name: &str,
    target_info: &AvPairs,
) -> Result<Vec<u8>, NtlmError> {
    let mut writer = MessageWriter::new(CHALLENGE, 56);
    writer.put_field(12, &utf16le(target_name), "target name")?;
    writer.put_u32(20, flags | NEGOTIATE_VERSION);
    writer.put_bytes(24, server_challenge);
    writer.put_field(40, &target_info.encode()?, "target info")?;
    writer.put_bytes(48, &OUR_VERSION);
    Ok(writer.finish())
}

pub(crate) fn parse_challenge(bytes: &[u8]) -> Result<Challenge, NtlmError> {
    check_header(bytes, CHALLENGE, 48)?;
    let flags = u32_at(bytes, 20)?;
    let mut server_challenge = [0u8; 8];
    server_challenge.copy_from_slice(slice(bytes, 24, 8)?);
    let info = field(bytes, 40, "target info")?;
    let target_info = if info.is_empty() {
        AvPairs::new()
    } else {
        AvPairs::parse(info)?
    };
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
    })
}

/// The parts of an AUTHENTICATE message, for encoding.
pub(crate) struct AuthenticateFields<'a> {
    pub flags: u32,
    pub lm_response: &'a [u8],
    pub nt_response: &'a [u8],
    pub domain: &'a str,
    pub user: &'a str,
    pub workstation: &'a str,
    pub encrypted_session_key: &'a [u8],
    pub version: [u8; 8],
    /// Reserve the 16-byte MIC slot (left zero for the caller to fill).
    pub with_mic: bool,
}

pub(crate) fn encode_authenticate(fields: &AuthenticateFields<'_>) -> Result<Vec<u8>, NtlmError> {
    let header = if fields.with_mic {
        AUTHENTICATE_HEADER_WITH_MIC
    } else {
        AUTHENTICATE_HEADER_WITHOUT_MIC
    };
    let mut writer = MessageWriter::new(AUTHENTICATE, header);
    // Payload order as Windows writes it (and as the §4.2.4.3 example shows).
    writer.put_field(28, &utf16le(fields.domain), "domain name")?;
    writer.put_field(36, &utf16le(fields.user), "user name")?;
    writer.put_field(44, &utf16le(fields.workstation), "workstation")?;
    writer.put_field(12, fields.lm_response, "LM response")?;
    writer.put_field(20, fields.nt_response, "NT response")?;
    writer.put_field(52, fields.encrypted_session_key, "session key")?;
    writer.put_u32(60, fields.flags | NEGOTIATE_VERSION);
    writer.put_bytes(64, &fields.version);
    Ok(writer.finish())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authenticate {
    pub flags: u32,
    pub lm_response: Vec<u8>,
    pub nt_response: Vec<u8>,
    pub domain: String,
    pub user: String,
    pub workstation: String,
    pub encrypted_session_key: Vec<u8>,
    /// Offset of the MIC slot, when the header is long enough to hold one.
    pub mic_offset: Option<usize>,
}

const AUTHENTICATE_FIELDS: [usize; 6] = [12, 20, 28, 36, 44, 52];

pub(crate) fn parse_authenticate(bytes: &[u8]) -> Result<Authenticate, NtlmError> {
    check_header(bytes, AUTHENTICATE, 64)?;
    let flags = u32_at(bytes, 60)?;
    let text = |at: usize, what: &str| -> Result<String, NtlmError> {
        let raw = field(bytes, at, what)?;
        if flags & NEGOTIATE_UNICODE != 0 {
            from_utf16le(raw, what)
        } else {
            // OEM code page: ASCII is all that can be interpreted without knowing the page.
            Ok(raw.iter().map(|&b| char::from(b)).collect())
        }
    };
    // The payload starts where the first non-empty field points; everything before it is header.
    let mut payload_start = bytes.len();
    for at in AUTHENTICATE_FIELDS {
        if let Some(offset) = field_offset(bytes, at)? {
            payload_start = payload_start.min(usize::try_from(offset).unwrap_or(usize::MAX));
        }
    }
    let mic_offset = (payload_start >= AUTHENTICATE_HEADER_WITH_MIC).then_some(MIC_OFFSET);
    Ok(Authenticate {
        flags,
        lm_response: field(bytes, 12, "LM response")?.to_vec(),
        nt_response: field(bytes, 20, "NT response")?.to_vec(),
        domain: text(28, "domain name")?,
        user: text(36, "user name")?,
        workstation: text(44, "workstation")?,
        encrypted_session_key: field(bytes, 52, "session key")?.to_vec(),
        mic_offset,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::av_pairs::{MSV_AV_NB_COMPUTER_NAME, MSV_AV_NB_DOMAIN_NAME};
    use crate::crypto::{
        client_blob, lmv2_response, nt_proof, ntowfv2, rc4, session_base_key, NtHash,
    };

    // The CHALLENGE and AUTHENTICATE messages of [MS-NLMP] §4.2.4.3.
    const SPEC_CHALLENGE: &str = "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef\
        00000000000000002400240044000000060070170000000f530065007200760065007200\
        02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000";
    const SPEC_AUTHENTICATE: &str =
        "4e544c4d5353500003000000180018006c00000054005400840000000c000c00\
        480000000800080054000000100010005c00000010001000d8000000358288e2\
        0501280a0000000f44006f006d00610069006e00550073006500720043004f00\
        4d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaa\
        aaaaaaaa68cd0ab851e51c96aabc927bebef6a1c010100000000000000000000\
        00000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00\
        01000c005300650072007600650072000000000000000000c5dad2544fc9\
        799094ce1ce90bc9d03e";

    #[test]
    fn parses_the_spec_challenge() {
        let bytes = hex::decode(SPEC_CHALLENGE).unwrap();
        let challenge = parse_challenge(&bytes).unwrap();
        assert_eq!(challenge.flags, 0xe28a_8233);
        assert_eq!(
            challenge.server_challenge,
            [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        );
        assert_eq!(
            challenge.target_info.get(MSV_AV_NB_DOMAIN_NAME).unwrap(),
            utf16le("Domain")
        );
        assert_eq!(
            challenge.target_info.get(MSV_AV_NB_COMPUTER_NAME).unwrap(),
            utf16le("Server")
        );
    }

    #[test]
    fn builds_the_spec_authenticate_message_byte_for_byte() {
        let challenge = parse_challenge(&hex::decode(SPEC_CHALLENGE).unwrap()).unwrap();
        let key = ntowfv2(&NtHash::from_password("Password"), "User", "Domain");
        let client_challenge = [0xaa; 8];
        let blob = client_blob(
            0,
            &client_challenge,
            &challenge.target_info.encode().unwrap(),
        );
        let proof = nt_proof(&key, &challenge.server_challenge, &blob);
        let mut nt = proof.to_vec();
        nt.extend_from_slice(&blob);
        let lm = lmv2_response(&key, &challenge.server_challenge, &client_challenge);
        let encrypted = rc4(&session_base_key(&key, &proof), &[0x55; 16]);
        let message = encode_authenticate(&AuthenticateFields {
            flags: 0xe288_8235,
            lm_response: &lm,
            nt_response: &nt,
            domain: "Domain",
            user: "User",
            workstation: "COMPUTER",
            encrypted_session_key: &encrypted,
            version: [0x05, 0x01, 0x28, 0x0a, 0, 0, 0, 0x0f],
            with_mic: false,
        })
        .unwrap();
        assert_eq!(hex::encode(message), SPEC_AUTHENTICATE);
    }

    #[test]
    fn parses_the_spec_authenticate_message() {
        let auth = parse_authenticate(&hex::decode(SPEC_AUTHENTICATE).unwrap()).unwrap();
        assert_eq!(auth.user, "User");
        assert_eq!(auth.domain, "Domain");
        assert_eq!(auth.workstation, "COMPUTER");
        assert_eq!(auth.nt_response.len(), 0x54);
        assert_eq!(
            hex::encode(&auth.encrypted_session_key),
            "c5dad2544fc9799094ce1ce90bc9d03e"
        );
        // The payload starts at 72: there is no room for a MIC.
        assert_eq!(auth.mic_offset, None);
    }

    #[test]
    fn wrong_message_type_is_reported() {
        let bytes = hex::decode(SPEC_CHALLENGE).unwrap();
        assert_eq!(
            parse_authenticate(&bytes),
            Err(NtlmError::UnexpectedMessageType {
                expected: 3,
                found: 2
            })
        );
    }

    #[test]
    fn negotiate_round_trips() {
        let bytes = encode_negotiate(0x1234);
        assert_eq!(bytes.len(), 40);
        assert_eq!(
            parse_negotiate(&bytes).unwrap().flags,
            0x1234 | NEGOTIATE_VERSION
        );
    }
}
