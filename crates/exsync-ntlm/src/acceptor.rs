//! The server side: CHALLENGE in answer to NEGOTIATE, then verification of AUTHENTICATE.

use rand::RngCore;

use crate::av_pairs::{
    AvPairs, AV_FLAG_MIC_PRESENT, MSV_AV_CHANNEL_BINDINGS, MSV_AV_DNS_COMPUTER_NAME,
    MSV_AV_DNS_DOMAIN_NAME, MSV_AV_NB_COMPUTER_NAME, MSV_AV_NB_DOMAIN_NAME, MSV_AV_TIMESTAMP,
};
use crate::channel_binding::ChannelBinding;
use crate::credentials::CredentialStore;
use crate::crypto::{ct_eq, filetime_now, mic, nt_proof, ntowfv2, rc4, session_base_key, NtHash};
use crate::error::NtlmError;
use crate::flags::{
    key_exchange, NEGOTIATE_128, NEGOTIATE_56, NEGOTIATE_ALWAYS_SIGN,
    NEGOTIATE_EXTENDED_SESSIONSECURITY, NEGOTIATE_KEY_EXCH, NEGOTIATE_NTLM, NEGOTIATE_SEAL,
    NEGOTIATE_SIGN, NEGOTIATE_TARGET_INFO, NEGOTIATE_UNICODE, NEGOTIATE_VERSION, REQUEST_TARGET,
    TARGET_TYPE_DOMAIN,
};
use crate::messages::{encode_challenge, parse_authenticate, parse_negotiate};

/// The names the server announces in its CHALLENGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNames {
    /// The NetBIOS domain; clients that send no domain of their own log on to it.
    pub netbios_domain: String,
    /// The NetBIOS name of the server, which clients may check against their target.
    pub netbios_computer: String,
    /// The DNS domain, announced alongside the NetBIOS one for clients that prefer it.
    pub dns_domain: String,
    /// The server's DNS name; clients bind their NTLMv2 proof to the target it names.
    pub dns_computer: String,
}

impl Default for ServerNames {
    fn default() -> Self {
        ServerNames {
            netbios_domain: "EXSYNC".into(),
            netbios_computer: "EXCHANGE".into(),
            dns_domain: "exsync.test".into(),
            dns_computer: "exchange.exsync.test".into(),
        }
    }
}

/// How the acceptor treats MsvAvChannelBindings, like IIS's Extended Protection setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelBindingPolicy {
    /// Extended Protection off: whatever the client sends is ignored.
    Off,
    /// "Accept": a binding the client sends must match; a client that sends none is let in.
    Accept(ChannelBinding),
    /// "Require": the client must send this exact binding.
    Require(ChannelBinding),
}

/// What `verify` insists on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Whether a client's TLS channel binding is ignored, checked when sent, or required.
    pub channel_binding: ChannelBindingPolicy,
    /// Refuse AUTHENTICATE messages without a MIC. Our CHALLENGE always carries a timestamp,
    /// which obliges NTLMv2 clients to send one.
    pub require_mic: bool,
}

impl VerifyPolicy {
    /// MIC required, channel binding required to match `binding` (Exchange 2019 CU14+ default).
    pub fn extended_protection(binding: ChannelBinding) -> Self {
        VerifyPolicy {
            channel_binding: ChannelBindingPolicy::Require(binding),
            require_mic: true,
        }
    }

    /// MIC required, no channel binding (plain HTTP or Extended Protection off).
    pub fn without_channel_binding() -> Self {
        VerifyPolicy {
            channel_binding: ChannelBindingPolicy::Off,
            require_mic: true,
        }
    }
}

/// Who logged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The domain as the client sent it (may be empty for a UPN logon).
    pub domain: String,
    /// The user name as the client sent it, for the caller to map to its own accounts.
    pub username: String,
    /// The client machine's name as it reported it; informational, not verified.
    pub workstation: String,
    /// The client sent a channel binding and it matched.
    pub channel_bound: bool,
}

/// One NTLM handshake as the server; one per connection.
#[derive(Debug)]
pub struct Acceptor<S> {
    store: S,
    names: ServerNames,
    state: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    negotiate: Vec<u8>,
    challenge: Vec<u8>,
    server_challenge: [u8; 8],
}

const ACCEPTOR_OPTIONAL_FLAGS: u32 = NEGOTIATE_SIGN
    | NEGOTIATE_SEAL
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_128
    | NEGOTIATE_56
    | NEGOTIATE_EXTENDED_SESSIONSECURITY;

impl<S: CredentialStore> Acceptor<S> {
    /// An acceptor that looks accounts up in `store` and announces default server names.
    pub fn new(store: S) -> Self {
        Acceptor::with_names(store, ServerNames::default())
    }

    /// An acceptor that announces `names`, for clients that check whom they talk to.
    pub fn with_names(store: S, names: ServerNames) -> Self {
        Acceptor {
            store,
            names,
            state: None,
        }
    }

    /// Leg 2: the CHALLENGE answering the client's NEGOTIATE.
    pub fn challenge_message(&mut self, negotiate: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let mut server_challenge = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut server_challenge);
        self.challenge_with(negotiate, server_challenge, filetime_now())
    }

    pub(crate) fn challenge_with(
        &mut self,
        negotiate: &[u8],
        server_challenge: [u8; 8],
        now: u64,
    ) -> Result<Vec<u8>, NtlmError> {
        let client_flags = parse_negotiate(negotiate)?.flags;
        if client_flags & NEGOTIATE_UNICODE == 0 {
            return Err(NtlmError::Unsupported {
                reason: "the client does not offer Unicode messages".into(),
            });
        }
        let flags = NEGOTIATE_UNICODE
            | REQUEST_TARGET
            | NEGOTIATE_NTLM
            | NEGOTIATE_ALWAYS_SIGN
            | TARGET_TYPE_DOMAIN
            | NEGOTIATE_TARGET_INFO
            | NEGOTIATE_VERSION
            | (client_flags & ACCEPTOR_OPTIONAL_FLAGS);
        let mut info = AvPairs::new();
        info.set_text(MSV_AV_NB_DOMAIN_NAME, &self.names.netbios_domain);
        info.set_text(MSV_AV_NB_COMPUTER_NAME, &self.names.netbios_computer);
        info.set_text(MSV_AV_DNS_DOMAIN_NAME, &self.names.dns_domain);
        info.set_text(MSV_AV_DNS_COMPUTER_NAME, &self.names.dns_computer);
        info.set(MSV_AV_TIMESTAMP, now.to_le_bytes().to_vec());
        let challenge =
            encode_challenge(flags, &server_challenge, &self.names.netbios_domain, &info)?;
        self.state = Some(Pending {
            negotiate: negotiate.to_vec(),
            challenge: challenge.clone(),
            server_challenge,
        });
        Ok(challenge)
    }

    /// Leg 3: checks the client's AUTHENTICATE against the account store and the policy.
    /// The handshake is spent afterwards, whatever the outcome: a client gets one guess per
    /// challenge.
    pub fn verify(
        &mut self,
        authenticate: &[u8],
        policy: &VerifyPolicy,
    ) -> Result<AuthenticatedUser, NtlmError> {
        let pending = self
            .state
            .take()
            .ok_or(NtlmError::OutOfOrder("verify before challenge_message"))?;
        let auth = parse_authenticate(authenticate)?;

        if auth.user.is_empty() || auth.nt_response.is_empty() {
            return Err(NtlmError::LmOrAnonymousRefused);
        }
        if auth.nt_response.len() == 24 {
            return Err(NtlmError::NtlmV1Refused);
        }
        // NTProofStr (16) + the fixed 28 bytes of the client challenge + at least MsvAvEOL.
        if auth.nt_response.len() < 16 + 28 + 4 {
            return Err(NtlmError::malformed("NTLMv2 response too short"));
        }
        let (presented_proof, blob) = auth.nt_response.split_at(16);
        if blob[0] != 1 || blob[1] != 1 {
            return Err(NtlmError::malformed(
                "unknown NTLMv2 client challenge version",
            ));
        }
        let client_info = AvPairs::parse(&blob[28..])?;

        // An unknown user costs the same work as a wrong password, so timing does not tell them
        // apart.
        let known = self.store.nt_hash(&auth.domain, &auth.user);
        let hash = known
            .clone()
            .unwrap_or_else(|| NtHash::from_bytes([0u8; 16]));
        let response_key = ntowfv2(&hash, &auth.user, &auth.domain);
        let expected_proof = nt_proof(&response_key, &pending.server_challenge, blob);
        let proof_matches = ct_eq(&expected_proof, presented_proof);
        match (known.is_some(), proof_matches) {
            (false, _) => return Err(NtlmError::UnknownUser),
            (true, false) => return Err(NtlmError::WrongPassword),
            (true, true) => {}
        }

        let key_exchange_key = session_base_key(&response_key, &expected_proof);
        let exported_key = if key_exchange(auth.flags) {
            let encrypted: [u8; 16] = auth
                .encrypted_session_key
                .as_slice()
                .try_into()
                .map_err(|_| NtlmError::malformed("key exchange without a 16-byte session key"))?;
            rc4(&key_exchange_key, &encrypted)
        } else {
            key_exchange_key
        };

        if client_info.flags()? & AV_FLAG_MIC_PRESENT != 0 {
            let offset = auth.mic_offset.ok_or_else(|| {
                NtlmError::malformed("MIC announced but the header has no room for it")
            })?;
            let mut zeroed = authenticate.to_vec();
            let presented: Vec<u8> = zeroed[offset..offset + 16].to_vec();
            zeroed[offset..offset + 16].fill(0);
            let expected = mic(
                &exported_key,
                &pending.negotiate,
                &pending.challenge,
                &zeroed,
            );
            if !ct_eq(&expected, &presented) {
                return Err(NtlmError::BadMic);
            }
        } else if policy.require_mic {
            return Err(NtlmError::MicMissing);
        }

        let sent = client_info
            .get(MSV_AV_CHANNEL_BINDINGS)
            .filter(|value| value.iter().any(|&b| b != 0));
        let channel_bound = match (&policy.channel_binding, sent) {
            (ChannelBindingPolicy::Off, _) => false,
            (ChannelBindingPolicy::Accept(_), None) => false,
            (ChannelBindingPolicy::Require(_), None) => {
                return Err(NtlmError::ChannelBindingMissing)
            }
            (
                ChannelBindingPolicy::Accept(expected) | ChannelBindingPolicy::Require(expected),
                Some(value),
            ) => {
                if !ct_eq(&expected.md5(), value) {
                    return Err(NtlmError::ChannelBindingMismatch);
                }
                true
            }
        };

        Ok(AuthenticatedUser {
            domain: auth.domain,
            username: auth.user,
            workstation: auth.workstation,
            channel_bound,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::credentials::UserTable;
    use crate::messages::{encode_authenticate, encode_negotiate, AuthenticateFields};

    // [MS-NLMP] §4.2.4.3 AUTHENTICATE (no MIC), answering server challenge 0123456789abcdef.
    const SPEC_AUTHENTICATE: &str =
        "4e544c4d5353500003000000180018006c00000054005400840000000c000c00\
        480000000800080054000000100010005c00000010001000d8000000358288e2\
        0501280a0000000f44006f006d00610069006e00550073006500720043004f00\
        4d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaa\
        aaaaaaaa68cd0ab851e51c96aabc927bebef6a1c010100000000000000000000\
        00000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00\
        01000c005300650072007600650072000000000000000000c5dad2544fc9\
        799094ce1ce90bc9d03e";
    const SPEC_SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

    fn spec_acceptor() -> Acceptor<UserTable> {
        let mut acceptor =
            Acceptor::new(UserTable::new().with_password("Domain", "User", "Password"));
        acceptor
            .challenge_with(
                &encode_negotiate(crate::flags::INITIATOR_FLAGS),
                SPEC_SERVER_CHALLENGE,
                0,
            )
            .unwrap();
        acceptor
    }

    #[test]
    fn verifies_the_spec_ntlmv2_response_and_refuses_it_when_a_mic_is_required() {
        let message = hex::decode(SPEC_AUTHENTICATE).unwrap();
        let lenient = VerifyPolicy {
            channel_binding: ChannelBindingPolicy::Off,
            require_mic: false,
        };
        let user = spec_acceptor().verify(&message, &lenient).unwrap();
        assert_eq!(
            (user.domain.as_str(), user.username.as_str()),
            ("Domain", "User")
        );
        assert_eq!(user.workstation, "COMPUTER");
        assert_eq!(
            spec_acceptor().verify(&message, &VerifyPolicy::without_channel_binding()),
            Err(NtlmError::MicMissing)
        );
    }

    fn authenticate_with_responses(lm: &[u8], nt: &[u8]) -> Vec<u8> {
        encode_authenticate(&AuthenticateFields {
            flags: NEGOTIATE_UNICODE,
            lm_response: lm,
            nt_response: nt,
            domain: "Domain",
            user: "User",
            workstation: "",
            encrypted_session_key: &[],
            version: [0; 8],
            with_mic: true,
        })
        .unwrap()
    }

    #[test]
    fn refuses_lm_only_and_ntlmv1_responses() {
        let lenient = VerifyPolicy {
            channel_binding: ChannelBindingPolicy::Off,
            require_mic: false,
        };
        let lm_only = authenticate_with_responses(&[0x11; 24], &[]);
        assert_eq!(
            spec_acceptor().verify(&lm_only, &lenient),
            Err(NtlmError::LmOrAnonymousRefused)
        );
        let v1 = authenticate_with_responses(&[0x11; 24], &[0x22; 24]);
        assert_eq!(
            spec_acceptor().verify(&v1, &lenient),
            Err(NtlmError::NtlmV1Refused)
        );
    }

    #[test]
    fn challenge_carries_names_timestamp_and_a_fresh_server_challenge() {
        let mut acceptor = Acceptor::new(UserTable::new());
        let negotiate = encode_negotiate(crate::flags::INITIATOR_FLAGS);
        let first =
            crate::messages::parse_challenge(&acceptor.challenge_message(&negotiate).unwrap())
                .unwrap();
        let second =
            crate::messages::parse_challenge(&acceptor.challenge_message(&negotiate).unwrap())
                .unwrap();
        assert_ne!(first.server_challenge, second.server_challenge);
        assert!(first.target_info.timestamp().unwrap().is_some());
        assert_eq!(
            first.target_info.get(MSV_AV_DNS_COMPUTER_NAME).unwrap(),
            crate::wire::utf16le("exchange.exsync.test")
        );
        assert_ne!(first.flags & NEGOTIATE_KEY_EXCH, 0);
    }

    #[test]
    fn a_client_without_unicode_is_refused() {
        let mut acceptor = Acceptor::new(UserTable::new());
        let err = acceptor
            .challenge_message(&encode_negotiate(crate::flags::NEGOTIATE_OEM))
            .unwrap_err();
        assert!(matches!(err, NtlmError::Unsupported { .. }));
    }
}
