//! `exsync demo --workers 3` as a user runs it: three worker processes on a throwaway
//! PostgreSQL, one killed in the middle of the first sync, the others finishing its users; it
//! converges, exits 0, and leaves no database running behind it.

use std::process::Command;

#[test]
fn the_workers_demo_kills_one_worker_converges_and_removes_its_database() {
    if !exsync_testkit::postgres::installed() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .args([
            "demo",
            "--workers",
            "3",
            "--users",
            "9",
            "--contacts",
            "6",
            "--events",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "synced by 3 `exsync run` processes",
        "with SIGKILL in the middle of the first sync",
        "Converged: ",
        "removed the throwaway PostgreSQL.",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
    // Every user is listed with who held it, the killed worker's users were finished by
    // another, and that was counted.
    let killed = stdout
        .lines()
        .find(|l| l.contains("was killed while it held a user"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(!killed.contains("finished 0 of"), "{killed}");
    assert!(
        stdout.lines().any(|l| l.contains("(killed) →")),
        "no user changed hands:\n{stdout}"
    );
    let listed = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("user") && l.contains("@"))
        .count();
    assert_eq!(listed, 9, "{stdout}");
    // The database is gone: nothing answers on its port.
    let port: u16 = stdout
        .split("PostgreSQL on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in:\n{stdout}"));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
