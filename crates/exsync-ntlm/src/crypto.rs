//! The MS-NLMP one-way functions (§3.3.2) and primitives, over fixed-size keys so that nothing
//! here can fail.

use hmac::digest::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use md4::Md4;
use md5::{Digest, Md5};
use rc4::{KeyInit, Rc4, StreamCipher};

use crate::wire::utf16le;

/// An account's NT hash, MD4 of the UTF-16LE password: what a server stores instead of the
/// password. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct NtHash(pub(crate) [u8; 16]);

impl NtHash {
    /// The hash of `password`, as Windows computes it when the password is set.
    pub fn from_password(password: &str) -> Self {
        let digest = Md4::digest(utf16le(password));
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest);
        NtHash(out)
    }

    /// For stores that keep hashes (smbpasswd style) rather than passwords.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        NtHash(bytes)
    }
}

impl std::fmt::Debug for NtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NtHash(<redacted>)")
    }
}

/// HMAC-MD5 with a 16-byte key. The key is zero-padded to MD5's 64-byte block, which is exactly
/// what HMAC does with a short key, so the infallible fixed-size constructor applies.
pub(crate) fn hmac_md5(key: &[u8; 16], parts: &[&[u8]]) -> [u8; 16] {
    let mut block = [0u8; 64];
    block[..16].copy_from_slice(key);
    let mut mac = <Hmac<Md5> as Mac>::new(GenericArray::from_slice(&block));
    for part in parts {
        mac.update(part);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

pub(crate) fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize());
    out
}

/// RC4K(key, data) of §6, used only to wrap the 16-byte exported session key.
pub(crate) fn rc4(key: &[u8; 16], data: &[u8; 16]) -> [u8; 16] {
    let mut cipher = Rc4::<rc4::consts::U16>::new(GenericArray::from_slice(key));
    let mut out = *data;
    cipher.apply_keystream(&mut out);
    out
}

/// Upper-cases the way Windows does for NTOWFv2: one code point to one code point. Characters whose
/// full upper case is longer (ß → SS) are kept as they are.
fn windows_upper(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(single), None) => single,
                _ => c,
            }
        })
        .collect()
}

/// NTOWFv2 = HMAC_MD5(NT hash, UNICODE(Uppercase(User) + UserDom)); also ResponseKeyLM.
pub(crate) fn ntowfv2(nt_hash: &NtHash, user: &str, domain: &str) -> [u8; 16] {
    let identity = utf16le(&format!("{}{}", windows_upper(user), domain));
    hmac_md5(&nt_hash.0, &[&identity])
}

/// The NTLMv2_CLIENT_CHALLENGE ("temp" in §3.3.2) whose HMAC is the NTProofStr.
pub(crate) fn client_blob(
    timestamp: u64,
    client_challenge: &[u8; 8],
    target_info: &[u8],
) -> Vec<u8> {
    let mut temp = Vec::with_capacity(32 + target_info.len());
    temp.extend_from_slice(&[0x01, 0x01, 0, 0, 0, 0, 0, 0]);
    temp.extend_from_slice(&timestamp.to_le_bytes());
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0, 0, 0, 0]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0, 0, 0, 0]);
    temp
}

pub(crate) fn nt_proof(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    blob: &[u8],
) -> [u8; 16] {
    hmac_md5(response_key, &[server_challenge, blob])
}

/// LMv2 response: HMAC over both challenges, followed by the client challenge. Our initiator
/// sends zeros instead (it always sends a MIC); kept for the spec vectors.
#[cfg(test)]
pub(crate) fn lmv2_response(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> Vec<u8> {
    let mut out = hmac_md5(response_key, &[server_challenge, client_challenge]).to_vec();
    out.extend_from_slice(client_challenge);
    out
}

/// SessionBaseKey, which for NTLMv2 is also the KeyExchangeKey.
pub(crate) fn session_base_key(response_key: &[u8; 16], nt_proof: &[u8; 16]) -> [u8; 16] {
    hmac_md5(response_key, &[nt_proof])
}

pub(crate) fn mic(
    exported_session_key: &[u8; 16],
    negotiate: &[u8],
    challenge: &[u8],
    authenticate_with_zero_mic: &[u8],
) -> [u8; 16] {
    hmac_md5(
        exported_session_key,
        &[negotiate, challenge, authenticate_with_zero_mic],
    )
}

/// Compares without an early exit, so the time taken says nothing about where a forged proof
/// first differs.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Windows FILETIME (100 ns ticks since 1601-01-01 UTC) for now.
pub(crate) fn filetime_now() -> u64 {
    const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ticks = since_unix.as_secs() * 10_000_000 + u64::from(since_unix.subsec_nanos() / 100);
    UNIX_EPOCH_AS_FILETIME + ticks
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    // [MS-NLMP] §4.2.1 common values and §4.2.4 NTLMv2 results.
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];

    fn spec_target_info() -> Vec<u8> {
        // AV pairs of §4.2.4: MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server", MsvAvEOL.
        let mut out = vec![0x02, 0x00, 0x0c, 0x00];
        out.extend(utf16le("Domain"));
        out.extend([0x01, 0x00, 0x0c, 0x00]);
        out.extend(utf16le("Server"));
        out.extend([0, 0, 0, 0]);
        out
    }

    #[test]
    fn nt_hash_of_password_is_the_spec_value() {
        // §4.2.2.1.2 NTOWFv1("Password").
        assert_eq!(
            hex::encode(NtHash::from_password("Password").0),
            "a4f49c406510bdcab6824ee7c30fd852"
        );
    }

    #[test]
    fn ntowfv2_is_the_spec_value() {
        // §4.2.4.1.1
        let key = ntowfv2(&NtHash::from_password("Password"), "User", "Domain");
        assert_eq!(hex::encode(key), "0c868a403bfd7a93a3001ef22ef02e3f");
    }

    #[test]
    fn lmv2_response_is_the_spec_value() {
        // §4.2.4.2.1
        let key = ntowfv2(&NtHash::from_password("Password"), "User", "Domain");
        let lm = lmv2_response(&key, &SERVER_CHALLENGE, &CLIENT_CHALLENGE);
        assert_eq!(
            hex::encode(lm),
            "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"
        );
    }

    #[test]
    fn nt_proof_session_key_and_encrypted_key_are_the_spec_values() {
        let key = ntowfv2(&NtHash::from_password("Password"), "User", "Domain");
        let blob = client_blob(0, &CLIENT_CHALLENGE, &spec_target_info());
        let proof = nt_proof(&key, &SERVER_CHALLENGE, &blob);
        // §4.2.4.2.2
        assert_eq!(hex::encode(proof), "68cd0ab851e51c96aabc927bebef6a1c");
        // §4.2.4.1.2 SessionBaseKey
        let base = session_base_key(&key, &proof);
        assert_eq!(hex::encode(base), "8de40ccadbc14a82f15cb0ad0de95ca3");
        // §4.2.4.2.3 EncryptedRandomSessionKey with RandomSessionKey = 0x55 * 16.
        assert_eq!(
            hex::encode(rc4(&base, &[0x55; 16])),
            "c5dad2544fc9799094ce1ce90bc9d03e"
        );
    }

    #[test]
    fn rc4_decrypts_what_it_encrypts() {
        let key = [7u8; 16];
        assert_eq!(rc4(&key, &rc4(&key, &[0x55; 16])), [0x55; 16]);
    }

    #[test]
    fn upper_casing_is_per_code_point() {
        assert_eq!(windows_upper("svc-sync"), "SVC-SYNC");
        assert_eq!(windows_upper("straße"), "STRAßE");
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
