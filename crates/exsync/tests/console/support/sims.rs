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
    Sims {
        _dir: dir,
        exchange,
        salesforce,
    }
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
