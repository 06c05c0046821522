//! What both simulators' command lines share: argument errors as clap prints them, logs on
//! stderr, a runtime, and a clean stop on SIGINT or SIGTERM.

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;

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
