//! Running one of our binaries as an admin would, and what it printed.
//!
//! The binary's path is a parameter: `exsync`'s own tests pass `env!("CARGO_BIN_EXE_exsync")`,
//! which only they can name.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// A run to make: arguments, environment, working directory and what to type on stdin.
pub struct Cli {
    command: Command,
    stdin: Option<Vec<u8>>,
}

/// What a finished run left: its status and its output, decoded (lossily: a test compares
/// text, and a stray byte should show up in the failure message rather than hide it).
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The exit code; `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout then stderr, for checks that do not care which stream a line went to.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `exsync sync --config <config>` to its end with the master key and error-level logs,
/// as the end-to-end tests drive a pass; panics with its output if it fails. Returns the
/// summary line of each user (`<user>: created … failures …`).
pub fn sync_summaries(bin: impl AsRef<OsStr>, config: &Path, master_key: &str) -> Vec<String> {
    let ran = Cli::new(bin)
        .args(["sync", "--config"])
        .arg(config)
        .env("EXSYNC_MASTER_KEY", master_key)
        .env("RUST_LOG", "error")
        .run();
    assert!(ran.status.success(), "exsync sync failed: {}", ran.text());
    ran.stdout
        .lines()
        .filter(|l| l.contains(": created "))
        .map(str::to_owned)
        .collect()
}

impl Cli {
    pub fn new(bin: impl AsRef<OsStr>) -> Cli {
        Cli {
            command: Command::new(bin),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cli {
        self.command.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cli {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cli {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cli {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cli {
        self.command.current_dir(dir);
        self
    }

    /// Text for stdin; without it stdin is empty (closed), so nothing can wait on a prompt.
    pub fn stdin(mut self, text: impl AsRef<[u8]>) -> Cli {
        self.stdin = Some(text.as_ref().to_vec());
        self
    }

    /// Runs to the end and captures stdout and stderr.
    pub fn run(mut self) -> Ran {
        let program = PathBuf::from(self.command.get_program());
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        let mut pipe = child.stdin.take().expect("stdin is piped");
        if let Some(text) = self.stdin.take() {
            // A command that refuses its arguments exits without reading stdin: the pipe may
            // already be closed, which is no failure of the run.
            if let Err(e) = pipe.write_all(&text) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
            }
        }
        drop(pipe);
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", program.display()));
        Ran {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Shorthand: runs `bin args…` with nothing on stdin.
pub fn run<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(bin: impl AsRef<OsStr>, args: I) -> Ran {
    Cli::new(bin).args(args).run()
}
