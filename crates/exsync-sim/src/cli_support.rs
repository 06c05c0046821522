//! What the simulators' command lines share: argument errors as clap prints them, logs on
//! stderr, a runtime, a clean stop on SIGINT or SIGTERM, and the private `sim.json`.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;

/// Says a simulator is ready: the path of its `sim.json` alone on stdout (what scripts read),
/// and a line for people on stderr with where it answers.
pub(crate) fn ready(name: &str, url: &str, sim_json: &Path) {
    println!("{}", sim_json.display());
    eprintln!("{name} ready at {url} (sim.json: {})", sim_json.display());
}

/// Parses `args` as `A` and runs `main` on a fresh runtime; errors are printed with their
/// causes, prefixed with `name`.
pub(crate) fn run<A, F>(
    name: &str,
    args: Vec<String>,
    default_log: &str,
    main: impl FnOnce(A) -> F,
) -> ExitCode
where
    A: Parser,
    F: Future<Output = anyhow::Result<()>>,
{
    let args = match A::try_parse_from(&args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns on SIGINT or SIGTERM.
pub(crate) async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Writes `value` as pretty JSON to `path` through a temporary file and a rename, mode 0600:
/// a `sim.json` holds the simulator's secrets, and a reader never sees half of it.
pub(crate) fn write_private_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(value).context("serialising sim.json")?;
    write_private(path, &text)
}

/// Writes `contents` to `path` through a temporary file and a rename, mode 0600 (keys and
/// secrets), so a reader never sees half of it.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
