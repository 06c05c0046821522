//! A throwaway MIT KDC on 127.0.0.1 for the Kerberos tests: its own realm, database and
//! configuration in a temporary directory, a service principal `HTTP/<host>` with a keytab, and a
//! service account with a password (and a keytab of the same key). Stopped when dropped.
//!
//! Without `krb5kdc` installed, [`Kdc::start`] returns `None` after printing why, unless
//! `EXSYNC_REQUIRE_KERBEROS=1` (CI, after installing the packages) makes that a failure.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The realm every test KDC serves.
pub const REALM: &str = "EXSYNC.TEST";
/// The service account's short name.
pub const USER: &str = "svc-sync";
/// The service account's password.
pub const PASSWORD: &str = "Kerb-Passw0rd!";

/// What the KDC should look like.
#[derive(Debug, Clone)]
pub struct KdcOptions {
    /// The host of the service principal `HTTP/<host>`.
    pub service_host: String,
    /// Run the KDC with its clock this many seconds ahead (through `faketime`), to make the
    /// tickets it issues unusable by a server with a correct clock.
    pub clock_ahead_secs: Option<i64>,
    /// The longest ticket the service account gets, in seconds (MIT's default otherwise).
    pub user_max_life_secs: Option<u32>,
}

impl Default for KdcOptions {
    fn default() -> Self {
        KdcOptions {
            service_host: "mail.exsync.test".into(),
            clock_ahead_secs: None,
            user_max_life_secs: None,
        }
    }
}

/// A running KDC and the files a client and a server need to use it.
pub struct Kdc {
    dir: tempfile::TempDir,
    child: Child,
    /// The port it listens on (TCP and UDP) on 127.0.0.1.
    pub port: u16,
    /// A client configuration naming the realm and this KDC (what `KRB5_CONFIG` should point at).
    pub krb5_conf: PathBuf,
    /// The keytab of `HTTP/<service_host>`, for an acceptor.
    pub service_keytab: PathBuf,
    /// The service account's key, for a client that logs in with a keytab.
    pub client_keytab: PathBuf,
    /// How long starting took, from creating the database to the port answering.
    pub start_time: Duration,
    /// `HTTP/<host>@REALM`.
    pub service_principal: String,
}

/// libfaketime, preloaded into the KDC itself (the `faketime` wrapper would stay between us and
/// the KDC, and killing it would leave the KDC running).
fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime",
        "/usr/lib/aarch64-linux-gnu/faketime",
        "/usr/lib/faketime",
    ]
    .iter()
    .map(|d| Path::new(d).join("libfaketime.so.1"))
    .find(|p| p.is_file())
}

fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn run(dir: &Path, env: &[(&str, &Path)], program: &Path, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("running a Kerberos admin tool");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Kdc {
    /// A KDC with the default options, or `None` (after saying why) without MIT's KDC.
    pub fn start() -> Option<Kdc> {
        Kdc::start_with(KdcOptions::default())
    }

    /// A KDC as `options` describe, or `None` (after saying why) without MIT's KDC.
    pub fn start_with(options: KdcOptions) -> Option<Kdc> {
        let (Some(kdb5_util), Some(kadmin), Some(krb5kdc)) =
            (tool("kdb5_util"), tool("kadmin.local"), tool("krb5kdc"))
        else {
            skip("MIT's KDC is not installed (apt-get install krb5-kdc krb5-admin-server)");
            return None;
        };
        let faketime = match options.clock_ahead_secs {
            Some(_) => match libfaketime() {
                Some(f) => Some(f),
                None => {
                    skip("faketime is not installed (apt-get install faketime)");
                    return None;
                }
            },
            None => None,
        };
        let started = Instant::now();
        let dir = tempfile::tempdir().expect("a directory for the KDC");
        let d = dir.path();
        let port = free_port();
        // One relation per line: MIT's profile parser ignores what follows `{` on its line.
        let krb5_conf = d.join("krb5.conf");
        std::fs::write(
            &krb5_conf,
            format!(
                "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  \
                 dns_lookup_realm = false\n  rdns = false\n  udp_preference_limit = 1\n\
                 [realms]\n  {REALM} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n"
            ),
        )
        .expect("writing krb5.conf");
        let kdc_conf = d.join("kdc.conf");
        std::fs::write(
            &kdc_conf,
            format!(
                "[kdcdefaults]\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n  {REALM} = {{\n    database_name = {db}\n    key_stash_file = {stash}\n    \
                 acl_file = {acl}\n    supported_enctypes = aes256-cts-hmac-sha1-96:normal \
                 aes128-cts-hmac-sha1-96:normal\n  }}\n[logging]\n  kdc = FILE:{log}\n",
                db = d.join("principal").display(),
                stash = d.join("stash").display(),
                acl = d.join("kadm5.acl").display(),
                log = d.join("kdc.log").display(),
            ),
        )
        .expect("writing kdc.conf");
        let env = [
            ("KRB5_CONFIG", krb5_conf.as_path()),
            ("KRB5_KDC_PROFILE", kdc_conf.as_path()),
        ];
        let host = options.service_host.to_ascii_lowercase();
        let service_principal = format!("HTTP/{host}@{REALM}");
        let service_keytab = d.join("http.keytab");
        let client_keytab = d.join("client.keytab");
        run(
            d,
            &env,
            &kdb5_util,
            &["create", "-s", "-r", REALM, "-P", "kdc-master-key"],
        );
        let admin = |query: String| run(d, &env, &kadmin, &["-r", REALM, "-q", &query]);
        let max_life = options
            .user_max_life_secs
            .map(|s| format!("-maxlife \"{s} seconds\" "))
            .unwrap_or_default();
        admin(format!("addprinc {max_life}-pw {PASSWORD} {USER}@{REALM}"));
        admin(format!("addprinc -randkey {service_principal}"));
        admin(format!(
            "ktadd -k {} {service_principal}",
            service_keytab.display()
        ));
        // -norandkey keeps the password valid beside the keytab.
        admin(format!(
            "ktadd -k {} -norandkey {USER}@{REALM}",
            client_keytab.display()
        ));
        let mut command = Command::new(&krb5kdc);
        if let (Some(lib), Some(ahead)) = (&faketime, options.clock_ahead_secs) {
            command
                .env("LD_PRELOAD", lib)
                .env("FAKETIME", format!("{ahead:+}s"));
        }
        // -n: stay in the foreground, so the child is the KDC and dropping it stops it.
        let child = command
            .args(["-n", "-r", REALM])
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting krb5kdc");
        let mut kdc = Kdc {
            dir,
            child,
            port,
            krb5_conf,
            service_keytab,
            client_keytab,
            start_time: Duration::ZERO,
            service_principal,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = kdc.child.try_wait() {
                panic!("krb5kdc exited with {status}: {}", kdc.log());
            }
            assert!(
                Instant::now() < deadline,
                "krb5kdc did not listen within 10 s: {}",
                kdc.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        kdc.start_time = started.elapsed();
        Some(kdc)
    }

    /// The temporary directory holding the database, configuration and keytabs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The service account's principal name, `svc-sync@EXSYNC.TEST`.
    pub fn user_principal(&self) -> String {
        format!("{USER}@{REALM}")
    }

    /// How many initial tickets (AS requests) the KDC has issued to anyone.
    pub fn initial_tickets_issued(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("AS_REQ") && l.contains("ISSUE"))
            .count()
    }

    /// The KDC's log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kdc.log")).unwrap_or_default()
    }

    /// The environment a client or acceptor process needs to use this KDC.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("KRB5_CONFIG".into(), self.krb5_conf.display().to_string())]
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
