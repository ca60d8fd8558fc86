//! The Tokio runtime that runs every Rust future of the module, started once per process.
//!
//! Python code never runs on it: its threads only move bytes and complete work items, and they hand
//! results to the asyncio loop through a [`Hub`](crate::hub::Hub). Nothing here takes the GIL.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The module's runtime: multi-threaded with two workers (the machines Pulsing targets have few
/// cores, and the Python thread is busy too), timers and IO enabled. Started on first use.
///
/// # Panics
///
/// If the operating system refuses to start the worker threads; nothing can run without them.
pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pulsing-tokio")
            .enable_all()
            .build()
            .expect("pulsing: cannot start the Tokio runtime")
    })
}

/// Spawns `fut` on the runtime; returns at once.
pub(crate) fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    runtime().spawn(fut);
}

/// Runs `fut` to completion from a thread that is not a runtime worker, giving up after `bound`.
/// Only for one-off work at import time; the callers release the GIL around it.
pub(crate) fn block_on_bounded<F>(fut: F, bound: Duration) -> Option<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    runtime().block_on(async move { tokio::time::timeout(bound, fut).await.ok() })
}
