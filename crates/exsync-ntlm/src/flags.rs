//! NegotiateFlags bits ([MS-NLMP] §2.2.2.5).

/// Strings in the messages are UTF-16LE; a peer without it is refused.
pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
/// Strings in the OEM code page; offered by old clients, never chosen here.
pub const NEGOTIATE_OEM: u32 = 0x0000_0002;
/// The client asks the server to name its target (domain) in the CHALLENGE.
pub const REQUEST_TARGET: u32 = 0x0000_0004;
/// Session signing; agreed for compatibility, never used over HTTP.
pub const NEGOTIATE_SIGN: u32 = 0x0000_0010;
/// Session sealing (encryption); agreed for compatibility, never used over HTTP.
pub const NEGOTIATE_SEAL: u32 = 0x0000_0020;
/// LM session keys; weak, so never chosen.
pub const NEGOTIATE_LM_KEY: u32 = 0x0000_0080;
/// NTLM authentication itself; set in every message.
pub const NEGOTIATE_NTLM: u32 = 0x0000_0200;
/// A signature block on every message even without signing; announced by the acceptor.
pub const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
/// The target named in the CHALLENGE is a domain (not a server).
pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
/// Extended session security: the session key derivation modern clients negotiate.
pub const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
/// The CHALLENGE carries the AV pairs NTLMv2 proofs are bound to.
pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
/// The messages carry an OS version field (informational); always set.
pub const NEGOTIATE_VERSION: u32 = 0x0200_0000;
/// 128-bit session keys.
pub const NEGOTIATE_128: u32 = 0x2000_0000;
/// An explicit exchanged session key, under which the MIC is computed.
pub const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
/// 56-bit session keys, for peers without 128-bit support.
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
