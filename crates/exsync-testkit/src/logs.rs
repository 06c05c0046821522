//! Log lines a test reads back: what exsync traces is held to what it may say (an endpoint,
//! never a record's text or a secret).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every line logged through the subscriber one of [`Captured`]'s constructors installs.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The subscriber every capture installs: every level, no colours, into `captured`.
fn subscriber(captured: &Captured) -> tracing::Dispatch {
    let writer = captured.clone();
    tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    )
}

impl Captured {
    /// Captures what this thread logs while the guard lives.
    pub fn on_this_thread() -> (Captured, tracing::dispatcher::DefaultGuard) {
        let captured = Captured::default();
        let guard = tracing::dispatcher::set_default(&subscriber(&captured));
        (captured, guard)
    }

    /// Captures what every thread of the process logs from now on; once per process (each
    /// test is one under nextest).
    pub fn everywhere() -> Captured {
        let captured = Captured::default();
        tracing::dispatcher::set_global_default(subscriber(&captured)).unwrap();
        captured
    }

    /// A multi-threaded runtime whose every thread (workers and blocking ones) logs, at every
    /// level and without colours, to the returned capture, and so does the calling thread
    /// while the guard lives: a test's whole lab, whichever thread a task runs on.
    pub fn runtime(
        worker_threads: usize,
    ) -> (
        Captured,
        tokio::runtime::Runtime,
        tracing::dispatcher::DefaultGuard,
    ) {
        let captured = Captured::default();
        let dispatch = subscriber(&captured);
        let on_start = dispatch.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .enable_all()
            .on_thread_start(move || {
                // The thread keeps it for its life: the runtime's threads end with it.
                std::mem::forget(tracing::dispatcher::set_default(&on_start));
            })
            .build()
            .unwrap();
        let guard = tracing::dispatcher::set_default(&dispatch);
        (captured, runtime, guard)
    }

    /// The text captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines captured so far.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }
}
