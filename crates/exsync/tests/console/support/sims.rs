//! The Exchange and Salesforce simulators, in-process, and an `exsync.toml` pointing at them.

use std::path::Path;

use exsync_engine::check::Inputs;
use exsync_engine::vault::SecretValue;
use exsync_sim::exchange::{ExchangeSim, ExchangeSimOptions};
use exsync_sim::salesforce::SalesforceSim;

pub struct Sims {
    _dir: tempfile::TempDir,
    pub exchange: ExchangeSim,
    pub salesforce: SalesforceSim,
}

pub async fn sims() -> Sims {
    sims_with(|_| {}).await
}

/// [`sims`] with the Exchange simulator's options changed by `change` (its auth schemes, a
/// keytab).
pub async fn sims_with(change: impl FnOnce(&mut ExchangeSimOptions)) -> Sims {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ExchangeSimOptions::new(dir.path().join("exchange"));
    change(&mut options);
    let exchange = ExchangeSim::start(options).await.unwrap();
    let salesforce = SalesforceSim::start(
        &dir.path().join("salesforce"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    seed_crm_users(&salesforce, &mailbox_addresses(&exchange)).await;
    Sims {
        _dir: dir,
        exchange,
        salesforce,
    }
}

/// The user mailboxes the Exchange simulator holds.
fn mailbox_addresses(exchange: &ExchangeSim) -> Vec<String> {
    exchange.info["mailboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["address"].as_str().map(str::to_owned))
        .collect()
}

/// An active CRM user for each mailbox, paired by Email as the default rule pairs them, so the
/// check's per-user lines find the CRM side of the users the configurations assign.
async fn seed_crm_users(salesforce: &SalesforceSim, mailboxes: &[String]) {
    let info = &salesforce.info;
    let ca = std::fs::read(&info.ca_file).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let users: Vec<serde_json::Value> = mailboxes
        .iter()
        .map(|address| {
            serde_json::json!({
                "username": format!("{address}.crm"),
                "email": address,
                "last_name": address,
                "profile": "Sales User",
            })
        })
        .collect();
    let reply = client
        .post(format!("{}/seed", info.control_url))
        .bearer_auth(&info.control_token)
        .json(&serde_json::json!({ "users": users }))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{:?}", reply.text().await);
}

impl Sims {
    pub fn config(&self, extra: &str) -> String {
        let x = &self.exchange.info;
        let s = &self.salesforce.info;
        let addr = format!("127.0.0.1:{}", self.exchange.port());
        format!(
            r#"
[store]
path = "state.db"

[exchange]
service_account = "{svc}"
ca_file = "{ca}"
{extra}

[network.resolve]
"contoso.test" = "{addr}"
"autodiscover.contoso.test" = "{addr}"
"mail.contoso.test" = "{addr}"

[crm]
login_url = "{login}"
client_id = "{client}"
username = "{user}"
ca_file = "{sfca}"

[configurations.sales]
users = ["user1@contoso.test"]
"#,
            svc = x["service_account"]["upn"].as_str().unwrap(),
            ca = x["ca_cert"].as_str().unwrap(),
            login = s.instance_url,
            client = s.client_id,
            user = s.integration_user.username,
            sfca = s.ca_file.display(),
        )
    }

    pub fn exchange_password(&self) -> SecretValue {
        SecretValue::new(
            self.exchange.info["service_account"]["password"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    pub fn private_key(&self) -> SecretValue {
        SecretValue::new(std::fs::read_to_string(&self.salesforce.info.private_key_file).unwrap())
    }

    pub fn inputs(
        &self,
        dir: &Path,
        extra: &str,
        user: &str,
        password: Option<SecretValue>,
    ) -> Inputs {
        let path = dir.join("exsync.toml");
        std::fs::write(&path, self.config(extra)).unwrap();
        Inputs {
            config: exsync_core::config::load(&path).unwrap(),
            exchange_password: password,
            crm_private_key: Some(self.private_key()),
            crm_client_secret: None,
            graph: Default::default(),
            user: Some(user.to_owned()),
            kerberos: Ok(None),
        }
    }
}
