//! The throwaway MIT KDC ([`exsync_kdc`]) as the tests use it: without `krb5kdc` installed,
//! [`Kdc::start`] returns `None` after printing why, unless `EXSYNC_REQUIRE_KERBEROS=1` (CI,
//! after installing the packages) makes that a failure; any other failure to start panics.

pub use exsync_kdc::{KdcOptions, PASSWORD, REALM, USER};

/// A running KDC; everything of [`exsync_kdc::Kdc`] through `Deref`.
pub struct Kdc(exsync_kdc::Kdc);

impl std::ops::Deref for Kdc {
    type Target = exsync_kdc::Kdc;

    fn deref(&self) -> &exsync_kdc::Kdc {
        &self.0
    }
}

/// Whether the tests must have a KDC (`EXSYNC_REQUIRE_KERBEROS=1`).
pub fn required() -> bool {
    std::env::var("EXSYNC_REQUIRE_KERBEROS").as_deref() == Ok("1")
}

/// Prints why a Kerberos test is skipped, or fails it when Kerberos is required.
pub fn skip(reason: &str) {
    assert!(
        !required(),
        "Kerberos is required (EXSYNC_REQUIRE_KERBEROS=1): {reason}"
    );
    eprintln!("SKIPPED: {reason}");
}

/// Whether MIT's KDC is installed; says why not (or fails, when Kerberos is required).
pub fn installed() -> bool {
    match exsync_kdc::installed() {
        Ok(()) => true,
        Err(why) => {
            skip(&why.to_string());
            false
        }
    }
}

impl Kdc {
    /// A KDC with the default options, or `None` (after saying why) without MIT's KDC.
    pub fn start() -> Option<Kdc> {
        Kdc::start_with(KdcOptions::default())
    }

    /// A KDC as `options` describe, or `None` (after saying why) without MIT's KDC.
    pub fn start_with(options: KdcOptions) -> Option<Kdc> {
        match exsync_kdc::Kdc::start_with(options) {
            Ok(kdc) => Some(Kdc(kdc)),
            Err(exsync_kdc::KdcError::NotInstalled(why)) => {
                skip(&why);
                None
            }
            Err(e) => panic!("{e}"),
        }
    }
}
