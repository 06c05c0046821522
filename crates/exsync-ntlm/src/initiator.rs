//! The client side: NEGOTIATE, then AUTHENTICATE in answer to the server's CHALLENGE.

use rand::RngCore;

use crate::av_pairs::{
    AV_FLAG_MIC_PRESENT, MSV_AV_CHANNEL_BINDINGS, MSV_AV_FLAGS, MSV_AV_TARGET_NAME,
};
use crate::channel_binding::ChannelBinding;
use crate::credentials::Credentials;
use crate::crypto::{client_blob, filetime_now, mic, nt_proof, ntowfv2, rc4, session_base_key};
use crate::error::NtlmError;
use crate::flags::{
    key_exchange, INITIATOR_FLAGS, NEGOTIATE_OEM, NEGOTIATE_TARGET_INFO, NEGOTIATE_UNICODE,
};
use crate::messages::{
    encode_authenticate, encode_negotiate, parse_challenge, AuthenticateFields, MIC_OFFSET,
    OUR_VERSION,
};

/// One NTLM handshake as the client. Use a new one per connection: NTLM authenticates the
/// connection, and the MIC binds all three messages of this exchange together.
#[derive(Debug)]
pub struct Initiator {
    credentials: Credentials,
    channel_binding: Option<ChannelBinding>,
    workstation: String,
    target_spn: Option<String>,
    negotiate: Option<Vec<u8>>,
}

/// The per-handshake random values, separate so that tests can fix them.
pub(crate) struct Randomness {
    pub client_challenge: [u8; 8],
    pub exported_session_key: [u8; 16],
    /// Used only when the server's target info carries no timestamp.
    pub now: u64,
}

impl Randomness {
    fn fresh() -> Self {
        let mut rng = rand::rngs::OsRng;
        let mut client_challenge = [0u8; 8];
        let mut exported_session_key = [0u8; 16];
        rng.fill_bytes(&mut client_challenge);
        rng.fill_bytes(&mut exported_session_key);
        Randomness {
            client_challenge,
            exported_session_key,
            now: filetime_now(),
        }
    }
}

impl Initiator {
    /// `channel_binding` is the TLS server endpoint binding of the connection the messages go
    /// over; `None` sends no MsvAvChannelBindings (accepted only where Extended Protection is off).
    pub fn new(credentials: Credentials, channel_binding: Option<ChannelBinding>) -> Self {
        Initiator {
            credentials,
            channel_binding,
            workstation: String::new(),
            target_spn: None,
            negotiate: None,
        }
    }

    /// The workstation name reported to the server (empty by default).
    pub fn with_workstation(mut self, workstation: impl Into<String>) -> Self {
        self.workstation = workstation.into();
        self
    }

    /// The service principal name (`HTTP/mail.example.com`) sent as MsvAvTargetName.
    pub fn with_target_spn(mut self, spn: impl Into<String>) -> Self {
        self.target_spn = Some(spn.into());
        self
    }

    /// Leg 1: the NEGOTIATE message.
    pub fn negotiate_message(&mut self) -> Vec<u8> {
        let message = encode_negotiate(INITIATOR_FLAGS);
        self.negotiate = Some(message.clone());
        message
    }

    /// Leg 3: the AUTHENTICATE message answering the server's CHALLENGE.
    pub fn authenticate_message(&mut self, challenge: &[u8]) -> Result<Vec<u8>, NtlmError> {
        self.authenticate_with(challenge, &Randomness::fresh())
    }

    pub(crate) fn authenticate_with(
        &mut self,
        challenge_bytes: &[u8],
        random: &Randomness,
    ) -> Result<Vec<u8>, NtlmError> {
        let negotiate = self.negotiate.as_deref().ok_or(NtlmError::OutOfOrder(
            "authenticate_message before negotiate_message",
        ))?;
        let challenge = parse_challenge(challenge_bytes)?;
        if challenge.flags & NEGOTIATE_UNICODE == 0 {
            return Err(NtlmError::Unsupported {
                reason: "the server did not agree to Unicode messages".into(),
            });
        }
        let flags = (challenge.flags & (INITIATOR_FLAGS | NEGOTIATE_TARGET_INFO)) & !NEGOTIATE_OEM;

        // The server's own timestamp goes back to it (§3.1.5.1.2), so clock skew does not matter.
        let timestamp = challenge.target_info.timestamp()?.unwrap_or(random.now);
        let mut info = challenge.target_info.clone();
        let av_flags = info.flags()? | AV_FLAG_MIC_PRESENT;
        info.set(MSV_AV_FLAGS, av_flags.to_le_bytes().to_vec());
        if let Some(binding) = &self.channel_binding {
            info.set(MSV_AV_CHANNEL_BINDINGS, binding.md5().to_vec());
        }
        if let Some(spn) = &self.target_spn {
            info.set_text(MSV_AV_TARGET_NAME, spn);
        }

        let response_key = ntowfv2(
            &self.credentials.nt_hash(),
            &self.credentials.username,
            &self.credentials.domain,
        );
        let blob = client_blob(timestamp, &random.client_challenge, &info.encode()?);
        let proof = nt_proof(&response_key, &challenge.server_challenge, &blob);
        let mut nt_response = proof.to_vec();
        nt_response.extend_from_slice(&blob);
        let key_exchange_key = session_base_key(&response_key, &proof);

        let (exported_key, encrypted_key) = if key_exchange(flags) {
            let encrypted = rc4(&key_exchange_key, &random.exported_session_key);
            (random.exported_session_key, encrypted.to_vec())
        } else {
            (key_exchange_key, Vec::new())
        };

        let mut message = encode_authenticate(&AuthenticateFields {
            flags,
            // With a MIC the LM response must be zeros (§3.1.5.1.2): it would be a second,
            // weaker proof of the same password.
            lm_response: &[0u8; 24],
            nt_response: &nt_response,
            domain: &self.credentials.domain,
            user: &self.credentials.username,
            workstation: &self.workstation,
            encrypted_session_key: &encrypted_key,
            version: OUR_VERSION,
            with_mic: true,
        })?;
        let code = mic(&exported_key, negotiate, challenge_bytes, &message);
        message[MIC_OFFSET..MIC_OFFSET + 16].copy_from_slice(&code);
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::av_pairs::{AvPairs, MSV_AV_TIMESTAMP};
    use crate::messages::{encode_challenge, parse_authenticate};

    #[test]
    fn echoes_the_server_timestamp_sends_zero_lm_and_announces_the_mic() {
        let mut info = AvPairs::new();
        info.set_text(crate::av_pairs::MSV_AV_NB_DOMAIN_NAME, "CONTOSO");
        info.set(
            MSV_AV_TIMESTAMP,
            0x01d9_0000_1234_5678u64.to_le_bytes().to_vec(),
        );
        let flags = INITIATOR_FLAGS | NEGOTIATE_TARGET_INFO;
        let challenge = encode_challenge(flags, &[9; 8], "CONTOSO", &info).unwrap();
        let binding = ChannelBinding::from_application_data(b"tls-server-end-point:x".to_vec());
        let mut initiator =
            Initiator::new(Credentials::new("CONTOSO", "u", "p"), Some(binding.clone()))
                .with_target_spn("HTTP/mail.contoso.com");
        initiator.negotiate_message();
        let random = Randomness {
            client_challenge: [3; 8],
            exported_session_key: [4; 16],
            now: 42,
        };
        let message = initiator.authenticate_with(&challenge, &random).unwrap();
        let auth = parse_authenticate(&message).unwrap();
        assert_eq!(auth.lm_response, vec![0u8; 24]);
        assert_eq!(auth.mic_offset, Some(MIC_OFFSET));
        assert_ne!(&message[MIC_OFFSET..MIC_OFFSET + 16], &[0u8; 16]);
        assert_eq!(auth.encrypted_session_key.len(), 16);
        let blob = &auth.nt_response[16..];
        assert_eq!(&blob[8..16], &0x01d9_0000_1234_5678u64.to_le_bytes());
        assert_eq!(&blob[16..24], &[3; 8]);
        let echoed = AvPairs::parse(&blob[28..]).unwrap();
        assert_eq!(
            echoed.flags().unwrap() & AV_FLAG_MIC_PRESENT,
            AV_FLAG_MIC_PRESENT
        );
        assert_eq!(echoed.get(MSV_AV_CHANNEL_BINDINGS).unwrap(), binding.md5());
        assert_eq!(
            echoed.get(MSV_AV_TARGET_NAME).unwrap(),
            crate::wire::utf16le("HTTP/mail.contoso.com")
        );
    }

    #[test]
    fn a_server_without_unicode_is_refused() {
        let challenge = encode_challenge(NEGOTIATE_OEM, &[9; 8], "X", &AvPairs::new()).unwrap();
        let mut initiator = Initiator::new(Credentials::new("D", "u", "p"), None);
        initiator.negotiate_message();
        assert!(matches!(
            initiator.authenticate_message(&challenge),
            Err(NtlmError::Unsupported { .. })
        ));
    }
}
