//! The Salesforce JWT key. The simulator makes one when its data dir has none, but an RSA key
//! takes seconds in an unoptimised build, so a test binary makes one and hands it to every
//! simulator it starts.

use std::sync::OnceLock;

use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;

/// One 2048-bit RSA key per test binary, as PKCS#8 PEM: the form the Salesforce simulator
/// writes and reads (`jwt-key.pem`), and the connector's `private_key_pem`.
pub fn jwt_key_pem() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("an RSA key");
        key.to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 encoding")
            .to_string()
    })
}
