//! Log lines a test reads back: what exsync traces is held to what it may say (an endpoint,
//! never a record's text or a secret).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every line logged through the subscriber [`Captured::runtime`] installs.
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

impl Captured {
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
        let writer = captured.clone();
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
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

    /// The lines captured so far.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
