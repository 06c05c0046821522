//! `exsync-sim` as a person or a script runs it: help that names every simulator, and a
//! simulator that says where it is once it is ready.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_exsync-sim");

#[test]
fn help_names_every_simulator_and_a_wrong_name_is_a_usage_error() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for name in ["exchange", "salesforce", "graph"] {
        assert!(
            text.contains(&format!("\n  {name} ")),
            "{name} missing: {text}"
        );
    }
    let wrong = Command::new(BIN).arg("exchnage").output().unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unknown simulator `exchnage`"));
    let sub = Command::new(BIN)
        .args(["graph", "--help"])
        .output()
        .unwrap();
    assert!(sub.status.success());
    assert!(String::from_utf8_lossy(&sub.stdout).contains("--data-dir"));
}

#[test]
fn each_simulator_prints_its_sim_json_and_a_ready_line() {
    for name in ["exchange", "graph", "salesforce"] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args([name, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let sim_json = dir.path().join("sim.json");
        assert_eq!(first.trim_end(), sim_json.display().to_string(), "{name}");
        assert!(sim_json.exists(), "{name}");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let ready = stderr
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains(" ready at "))
            .unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            ready.starts_with(&format!("exsync-sim {name} ready at https://127.0.0.1:")),
            "{name}: {ready}"
        );
    }
}
