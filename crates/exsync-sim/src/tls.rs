//! A small certificate authority for the simulators.
//!
//! Each simulator serves HTTPS with a leaf certificate signed by a CA it keeps in its data
//! directory, so clients verify TLS for real (no "skip verification" switches) by trusting
//! `ca.pem`. The CA is reused across restarts so a client configured once keeps working.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const CA_COMMON_NAME: &str = "exsync simulator CA";

/// A leaf certificate and its private key, ready for a rustls server.
pub struct Leaf {
    /// The certificate, DER-encoded; also what NTLM channel binding hashes.
    pub cert_der: CertificateDer<'static>,
    /// Its private key; kept in memory only.
    pub key: PrivateKeyDer<'static>,
}

/// The simulator CA: key and certificate on disk, plus the in-memory signer.
pub struct SimCa {
    dir: PathBuf,
    key: KeyPair,
    /// The signer rebuilt from the stored key. Its subject and key identifier equal those of
    /// the stored `ca.pem`, so leaves it signs chain to the certificate clients trust.
    signer: Certificate,
}

impl std::fmt::Debug for SimCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is deliberately left out.
        f.debug_struct("SimCa").field("dir", &self.dir).finish()
    }
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, "exsync");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    Ok(params)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(contents)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().ok();
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

impl SimCa {
    /// Loads the CA from `dir/ca.pem` + `dir/ca.key`, or creates both (key mode 0600).
    pub fn load_or_create(dir: &Path) -> Result<SimCa> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let key = if key_path.exists() && cert_path.exists() {
            let pem = fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?;
            KeyPair::from_pem(&pem).with_context(|| format!("parsing {}", key_path.display()))?
        } else {
            let key = KeyPair::generate().context("generating the CA key")?;
            let cert = ca_params()?
                .self_signed(&key)
                .context("self-signing the CA")?;
            write_private(&key_path, key.serialize_pem().as_bytes())?;
            let tmp = cert_path.with_extension("tmp");
            fs::write(&tmp, cert.pem()).with_context(|| format!("writing {}", tmp.display()))?;
            fs::rename(&tmp, &cert_path)
                .with_context(|| format!("renaming to {}", cert_path.display()))?;
            key
        };
        let signer = ca_params()?
            .self_signed(&key)
            .context("rebuilding the CA signer")?;
        Ok(SimCa {
            dir: dir.to_path_buf(),
            key,
            signer,
        })
    }

    /// Path of the CA certificate (PEM) that clients must trust.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// The CA certificate as PEM text.
    pub fn ca_cert_pem(&self) -> Result<String> {
        let p = self.ca_cert_path();
        fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// Issues a leaf for `hosts` (DNS names and/or IP literals), valid 2020–2099.
    pub fn issue_leaf(&self, hosts: &[&str]) -> Result<Leaf> {
        self.issue_leaf_valid(
            hosts,
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2099, 12, 31),
        )
    }

    /// Issues a leaf that expired in 2021, for tests of certificate checks.
    pub fn issue_expired_leaf(&self, hosts: &[&str]) -> Result<Leaf> {
        self.issue_leaf_valid(
            hosts,
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2021, 1, 1),
        )
    }

    fn issue_leaf_valid(
        &self,
        hosts: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<Leaf> {
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(names).context("leaf parameters")?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("localhost"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().context("generating a leaf key")?;
        let cert = params
            .signed_by(&key, &self.signer, &self.key)
            .context("signing the leaf")?;
        Ok(Leaf {
            cert_der: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// A rustls server configuration (ring provider, HTTP/1.1 ALPN) with a fresh leaf for
    /// `hosts`.
    pub fn server_config(&self, hosts: &[&str]) -> Result<Arc<ServerConfig>> {
        let leaf = self.issue_leaf(hosts)?;
        server_config_for_leaf(leaf)
    }
}

/// A rustls server configuration (ring provider, HTTP/1.1 ALPN) serving `leaf`.
pub fn server_config_for_leaf(leaf: Leaf) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.cert_der], leaf.key)
        .context("installing the leaf certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ca_is_reused_and_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = SimCa::load_or_create(dir.path()).unwrap();
        let pem1 = a.ca_cert_pem().unwrap();
        let b = SimCa::load_or_create(dir.path()).unwrap();
        assert_eq!(pem1, b.ca_cert_pem().unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        b.server_config(&["mail.contoso.test", "127.0.0.1"])
            .unwrap();
    }
}
