//! NegotiateFlags bits ([MS-NLMP] §2.2.2.5).

pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
pub const NEGOTIATE_OEM: u32 = 0x0000_0002;
pub const REQUEST_TARGET: u32 = 0x0000_0004;
pub const NEGOTIATE_SIGN: u32 = 0x0000_0010;
pub const NEGOTIATE_SEAL: u32 = 0x0000_0020;
pub const NEGOTIATE_LM_KEY: u32 = 0x0000_0080;
pub const NEGOTIATE_NTLM: u32 = 0x0000_0200;
pub const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
pub const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
pub const NEGOTIATE_VERSION: u32 = 0x0200_0000;
pub const NEGOTIATE_128: u32 = 0x2000_0000;
pub const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
pub const NEGOTIATE_56: u32 = 0x8000_0000;

/// What our initiator offers: Unicode, NTLM with extended session security, signing (so that a key
/// exchange happens and the MIC is keyed by a fresh random key), 128-bit keys.
pub const INITIATOR_FLAGS: u32 = NEGOTIATE_UNICODE
    | NEGOTIATE_OEM
    | REQUEST_TARGET
    | NEGOTIATE_SIGN
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_VERSION
    | NEGOTIATE_128
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_56;

/// Key exchange only happens when it is negotiated together with signing or sealing
/// (§3.1.5.1.2); pyspnego and Windows both follow that rule.
pub(crate) fn key_exchange(flags: u32) -> bool {
    flags & NEGOTIATE_KEY_EXCH != 0 && flags & (NEGOTIATE_SIGN | NEGOTIATE_SEAL) != 0
}
