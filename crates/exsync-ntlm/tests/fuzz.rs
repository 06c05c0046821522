//! Arbitrary and truncated bytes into every parser and into the acceptor: errors, never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exsync_ntlm::{parse, Acceptor, Credentials, Initiator, UserTable, VerifyPolicy};
use proptest::prelude::*;

fn valid_messages() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut server = Acceptor::new(UserTable::new().with_password("D", "u", "p"));
    let mut client = Initiator::new(Credentials::new("D", "u", "p"), None).with_workstation("W");
    let negotiate = client.negotiate_message();
    let challenge = server.challenge_message(&negotiate).unwrap();
    let authenticate = client.authenticate_message(&challenge).unwrap();
    (negotiate, challenge, authenticate)
}

fn all_parsers(bytes: &[u8]) {
    let _ = parse::negotiate(bytes);
    let _ = parse::challenge(bytes);
    let _ = parse::authenticate(bytes);
    let _ = parse::av_pairs(bytes);
    let _ = exsync_ntlm::tls_server_end_point(bytes);
    let mut client = Initiator::new(Credentials::new("D", "u", "p"), None);
    client.negotiate_message();
    let _ = client.authenticate_message(bytes);
    let mut server = Acceptor::new(UserTable::new().with_password("D", "u", "p"));
    let _ = server.challenge_message(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        all_parsers(&bytes);
    }

    #[test]
    fn random_bytes_after_the_signature_never_panic(
        kind in 1u8..=3,
        rest in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = b"NTLMSSP\0".to_vec();
        bytes.extend([kind, 0, 0, 0]);
        bytes.extend(rest);
        all_parsers(&bytes);
    }

    #[test]
    fn truncated_and_mutated_real_messages_never_panic(
        cut in 0usize..400,
        flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
    ) {
        let (negotiate, challenge, authenticate) = valid_messages();
        for message in [&negotiate, &challenge, &authenticate] {
            let mut bytes = message[..cut.min(message.len())].to_vec();
            all_parsers(&bytes);
            bytes = message.to_vec();
            for (at, value) in &flips {
                if let Some(b) = bytes.get_mut(*at) {
                    *b ^= value;
                }
            }
            all_parsers(&bytes);
        }
        // The acceptor's verify path with damaged AUTHENTICATE messages.
        let mut server = Acceptor::new(UserTable::new().with_password("D", "u", "p"));
        let mut client = Initiator::new(Credentials::new("D", "u", "p"), None);
        let challenge = server.challenge_message(&client.negotiate_message()).unwrap();
        let mut authenticate = client.authenticate_message(&challenge).unwrap();
        let original = authenticate.clone();
        for (at, value) in &flips {
            if let Some(b) = authenticate.get_mut(*at) {
                *b ^= value;
            }
        }
        authenticate.truncate(cut.max(1));
        let result = server.verify(&authenticate, &VerifyPolicy::without_channel_binding());
        let untouched = authenticate == original;
        // Every byte is covered by the proof or the MIC: only an untouched message passes.
        prop_assert_eq!(result.is_ok(), untouched, "{:?}", result);
    }
}
