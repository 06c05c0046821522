//! A switchable krb5.conf: after `use_switchable`, `use_config` replaces the content of the file
//! `KRB5_CONFIG` already names instead of the environment, and MIT's next login reads the new
//! content (a realm unknown before logs in after the switch). Its own test binary, because
//! `KRB5_CONFIG` is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use exsync_gss::krb5_conf::{use_config, use_switchable};
use exsync_gss::{ClientCredential, ClientSecret};
use exsync_testkit::kdc::{Kdc, PASSWORD};

#[test]
fn a_new_realm_applies_to_the_next_login_without_touching_the_environment() {
    let Some(kdc) = Kdc::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before.conf");
    std::fs::write(&before, "[libdefaults]\n  dns_lookup_kdc = false\n").unwrap();
    std::env::set_var("KRB5_CONFIG", &before);

    let guard = use_switchable().unwrap();
    let target = std::path::PathBuf::from(std::env::var_os("KRB5_CONFIG").unwrap());
    assert_ne!(target, before);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        std::fs::read_to_string(&before).unwrap()
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(target.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    // Whatever the umask (usually 022, which would give 0755).
    assert_eq!(dir_mode, 0o700);

    // The realm is unknown to the configuration in place.
    let secret = ClientSecret::Password(PASSWORD.into());
    assert!(ClientCredential::acquire(&kdc.user_principal(), &secret).is_err());

    // MIT looks at a profile file at most once a second.
    std::thread::sleep(Duration::from_millis(1100));
    use_config(&kdc.krb5_conf).unwrap();
    assert_eq!(std::env::var_os("KRB5_CONFIG"), Some(target.clone().into()));
    let cred = ClientCredential::acquire(&kdc.user_principal(), &secret)
        .unwrap_or_else(|e| panic!("no login after the switch: {e}\n{}", kdc.log()));
    assert!(cred.lifetime_secs().unwrap_or(0) > 0);

    drop(guard);
    assert!(
        !target.exists(),
        "the switchable krb5.conf outlived its guard"
    );
}
