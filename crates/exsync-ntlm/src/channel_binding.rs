//! TLS channel binding ("Extended Protection"): RFC 5929 `tls-server-end-point` and the MD5 of the
//! `gss_channel_bindings_struct` that NTLM carries as MsvAvChannelBindings.

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use crate::crypto::md5;
use crate::error::NtlmError;

/// The application data of a channel binding. Only the application data is used over HTTP; the
/// address fields of the GSS structure stay empty.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    application_data: Vec<u8>,
}

impl ChannelBinding {
    /// `tls-server-end-point:` + the RFC 5929 hash of the server's certificate (DER).
    pub fn tls_server_end_point(cert_der: &[u8]) -> Result<Self, NtlmError> {
        let mut application_data = b"tls-server-end-point:".to_vec();
        application_data.extend(tls_server_end_point(cert_der)?);
        Ok(ChannelBinding { application_data })
    }

    /// A binding from raw application data, for a binding computed elsewhere (or a test's).
    pub fn from_application_data(application_data: Vec<u8>) -> Self {
        ChannelBinding { application_data }
    }

    /// The application data the binding hashes, e.g. to compare with what a peer derived.
    pub fn application_data(&self) -> &[u8] {
        &self.application_data
    }

    /// MD5 of the serialized `gss_channel_bindings_struct`: initiator address type and address,
    /// acceptor address type and address (all empty), then the application data, each length
    /// little-endian 32-bit.
    pub fn md5(&self) -> [u8; 16] {
        let len = u32::try_from(self.application_data.len()).unwrap_or(u32::MAX);
        md5(&[&[0u8; 16], &len.to_le_bytes(), &self.application_data])
    }
}

impl std::fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: String = self.md5().iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("ChannelBinding").field("md5", &hex).finish()
    }
}

/// RFC 5929 §4.1: the certificate hashed with its signature's hash algorithm, SHA-256 when that
/// is MD5 or SHA-1.
pub fn tls_server_end_point(cert_der: &[u8]) -> Result<Vec<u8>, NtlmError> {
    let hash = signature_hash(cert_der)?;
    Ok(match hash {
        HashAlg::Sha224 => Sha224::digest(cert_der).to_vec(),
        HashAlg::Sha256 => Sha256::digest(cert_der).to_vec(),
        HashAlg::Sha384 => Sha384::digest(cert_der).to_vec(),
        HashAlg::Sha512 => Sha512::digest(cert_der).to_vec(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashAlg {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

fn cert_error(reason: impl Into<String>) -> NtlmError {
    NtlmError::Certificate {
        reason: reason.into(),
    }
}

/// Reads one DER TLV; returns (tag, contents, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), NtlmError> {
    let (&tag, rest) = input
        .split_first()
        .ok_or_else(|| cert_error("truncated DER"))?;
    if tag & 0x1f == 0x1f {
        return Err(cert_error("unsupported multi-byte DER tag"));
    }
    let (&first, rest) = rest
        .split_first()
        .ok_or_else(|| cert_error("truncated DER length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(cert_error("unsupported DER length"));
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return Err(cert_error("DER value runs past the end"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;

// DER contents of the signature algorithm OIDs.
const RSA_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
const ECDSA_SHA2_PREFIX: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03];
const NIST_SIG_PREFIX: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
const NIST_HASH_PREFIX: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const MD5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05];

fn signature_hash(cert_der: &[u8]) -> Result<HashAlg, NtlmError> {
    let (tag, certificate, _) = tlv(cert_der)?;
    if tag != SEQUENCE {
        return Err(cert_error("certificate is not a DER SEQUENCE"));
    }
    let (_, _tbs, rest) = tlv(certificate)?;
    let (tag, algorithm, _) = tlv(rest)?;
    if tag != SEQUENCE {
        return Err(cert_error("signatureAlgorithm is not a SEQUENCE"));
    }
    let (tag, oid, params) = tlv(algorithm)?;
    if tag != OID {
        return Err(cert_error("signatureAlgorithm has no OID"));
    }
    if let Some(last) = oid.strip_prefix(RSA_PREFIX) {
        return match last {
            [0x04] | [0x05] => Ok(HashAlg::Sha256), // md5WithRSA, sha1WithRSA
            [0x0b] => Ok(HashAlg::Sha256),
            [0x0c] => Ok(HashAlg::Sha384),
            [0x0d] => Ok(HashAlg::Sha512),
            [0x0e] => Ok(HashAlg::Sha224),
            [0x0a] => pss_hash(params),
            _ => Err(cert_error("unsupported RSA signature algorithm")),
        };
    }
    if oid == ECDSA_SHA1 || oid == DSA_SHA1 {
        return Ok(HashAlg::Sha256);
    }
    if let Some(last) = oid
        .strip_prefix(ECDSA_SHA2_PREFIX)
        .or_else(|| oid.strip_prefix(NIST_SIG_PREFIX))
    {
        return match last {
            [0x01] => Ok(HashAlg::Sha224),
            [0x02] => Ok(HashAlg::Sha256),
            [0x03] => Ok(HashAlg::Sha384),
            [0x04] => Ok(HashAlg::Sha512),
            _ => Err(cert_error("unsupported ECDSA/DSA signature algorithm")),
        };
    }
    Err(cert_error(
        "signature algorithm has no hash RFC 5929 defines a binding for",
    ))
}

/// RSASSA-PSS names its hash in the parameters: `[0] AlgorithmIdentifier`, SHA-1 when absent.
fn pss_hash(params: &[u8]) -> Result<HashAlg, NtlmError> {
    if params.is_empty() {
        return Ok(HashAlg::Sha256);
    }
    let (tag, fields, _) = tlv(params)?;
    if tag != SEQUENCE {
        return Err(cert_error("RSASSA-PSS parameters are not a SEQUENCE"));
    }
    if fields.is_empty() {
        return Ok(HashAlg::Sha256);
    }
    let (tag, explicit, _) = tlv(fields)?;
    if tag != 0xa0 {
        return Ok(HashAlg::Sha256);
    }
    let (_, hash_alg, _) = tlv(explicit)?;
    let (_, oid, _) = tlv(hash_alg)?;
    if oid == SHA1 || oid == MD5 {
        return Ok(HashAlg::Sha256);
    }
    match oid.strip_prefix(NIST_HASH_PREFIX) {
        Some([0x01]) => Ok(HashAlg::Sha256),
        Some([0x02]) => Ok(HashAlg::Sha384),
        Some([0x03]) => Ok(HashAlg::Sha512),
        Some([0x04]) => Ok(HashAlg::Sha224),
        _ => Err(cert_error("unsupported RSASSA-PSS hash")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fake_cert(algorithm_oid: &[u8], params: &[u8]) -> Vec<u8> {
        let mut alg = vec![OID, algorithm_oid.len() as u8];
        alg.extend_from_slice(algorithm_oid);
        alg.extend_from_slice(params);
        let mut body = vec![SEQUENCE, 3, 0x02, 0x01, 0x01]; // a stand-in tbsCertificate
        body.push(SEQUENCE);
        body.push(alg.len() as u8);
        body.extend(alg);
        body.extend([0x03, 0x02, 0x00, 0xff]); // signature BIT STRING
        let mut cert = vec![SEQUENCE, body.len() as u8];
        cert.extend(body);
        cert
    }

    #[test]
    fn md5_and_sha1_signatures_bind_with_sha256() {
        for last in [0x04, 0x05] {
            let mut oid = RSA_PREFIX.to_vec();
            oid.push(last);
            let cert = fake_cert(&oid, &[0x05, 0x00]);
            assert_eq!(
                tls_server_end_point(&cert).unwrap(),
                Sha256::digest(&cert).to_vec()
            );
        }
        let cert = fake_cert(ECDSA_SHA1, &[]);
        assert_eq!(tls_server_end_point(&cert).unwrap().len(), 32);
    }

    #[test]
    fn sha384_and_sha512_signatures_bind_with_their_own_hash() {
        let mut oid = RSA_PREFIX.to_vec();
        oid.push(0x0c);
        let cert = fake_cert(&oid, &[0x05, 0x00]);
        assert_eq!(
            tls_server_end_point(&cert).unwrap(),
            Sha384::digest(&cert).to_vec()
        );
        let mut oid = ECDSA_SHA2_PREFIX.to_vec();
        oid.push(0x04);
        let cert = fake_cert(&oid, &[]);
        assert_eq!(
            tls_server_end_point(&cert).unwrap(),
            Sha512::digest(&cert).to_vec()
        );
    }

    #[test]
    fn real_certificates_from_rcgen() {
        for (alg, len) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, 32),
            (&rcgen::PKCS_ECDSA_P384_SHA384, 48),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            let cert = params.self_signed(&key).unwrap();
            let der = cert.der().to_vec();
            assert_eq!(tls_server_end_point(&der).unwrap().len(), len);
        }
    }

    #[test]
    fn garbage_and_ed25519_are_errors_not_panics() {
        assert!(tls_server_end_point(&[]).is_err());
        assert!(tls_server_end_point(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        let ed25519 = fake_cert(&[0x2b, 0x65, 0x70], &[]);
        assert!(matches!(
            tls_server_end_point(&ed25519),
            Err(NtlmError::Certificate { .. })
        ));
    }

    #[test]
    fn binding_hash_covers_the_gss_structure() {
        // 16 zero bytes of addresses, the length, then the data.
        let binding = ChannelBinding::from_application_data(b"tls-server-end-point:ab".to_vec());
        let mut raw = vec![0u8; 16];
        raw.extend(23u32.to_le_bytes());
        raw.extend(b"tls-server-end-point:ab");
        assert_eq!(binding.md5(), md5(&[&raw]));
    }
}
