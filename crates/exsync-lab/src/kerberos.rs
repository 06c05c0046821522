//! The lab over Kerberos: a throwaway MIT KDC on 127.0.0.1 whose service principal is the
//! Exchange simulator's mail host, the simulator accepting only Negotiate with that keytab, and
//! the service logging in as the service account with its keytab.

use std::path::PathBuf;

use anyhow::{Context, Result};
use exsync_kdc::{Kdc, KdcOptions};

/// The Exchange simulator's mail host (`mail.` and its default domain), the service principal's
/// host.
pub const MAIL_HOST: &str = "mail.contoso.test";

/// How the lab logs in with Kerberos, and the simulator's half of it.
#[derive(Debug, Clone)]
pub struct LabKerberos {
    /// The realm, for the written configuration.
    pub realm: String,
    /// The KDC, `127.0.0.1:<port>`.
    pub kdc: String,
    /// `svc-sync@REALM`.
    pub principal: String,
    /// The service account's Kerberos password, which a written configuration logs in with.
    pub password: String,
    /// The service account's keytab, which the service logs in with.
    pub client_keytab: PathBuf,
    /// The keytab of `HTTP/<mail host>`, which the simulator checks tickets with.
    pub service_keytab: PathBuf,
}

/// Starts the KDC and points MIT's library at it. Call before starting threads (the library's
/// configuration is the process environment); keep the [`Kdc`] for as long as the lab runs.
pub fn start_kdc() -> Result<(Kdc, LabKerberos)> {
    let kdc = Kdc::start_with(KdcOptions {
        service_host: MAIL_HOST.into(),
        ..KdcOptions::default()
    })?;
    let kdc_addr = format!("127.0.0.1:{}", kdc.port);
    let conf = exsync_gss::krb5_conf::render(exsync_kdc::REALM, std::slice::from_ref(&kdc_addr))
        .map_err(anyhow::Error::msg)?;
    let conf_path = kdc.dir().join("client-krb5.conf");
    std::fs::write(&conf_path, conf).with_context(|| format!("writing {}", conf_path.display()))?;
    exsync_gss::krb5_conf::use_config(&conf_path).map_err(anyhow::Error::msg)?;
    let setup = LabKerberos {
        realm: exsync_kdc::REALM.into(),
        kdc: kdc_addr,
        principal: kdc.user_principal(),
        password: exsync_kdc::PASSWORD.into(),
        client_keytab: kdc.client_keytab.clone(),
        service_keytab: kdc.service_keytab.clone(),
    };
    Ok((kdc, setup))
}
