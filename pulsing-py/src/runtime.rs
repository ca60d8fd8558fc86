//! The Tokio runtime that runs every Rust future of the module, started once per process.
//!
//! Python code never runs on it: its threads only move bytes and complete work items, and they hand
//! results to the asyncio loop through a [`Hub`](crate::hub::Hub). Nothing here takes the GIL.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The module's runtime: multi-threaded with one worker by default, timers and IO enabled. Started on
/// first use. `PULSING_TOKIO_WORKERS=n` (read once, at start) sets another worker count.
///
/// Why one: the machines Pulsing targets have few cores and the Python thread is busy too. A second
/// worker mostly adds cross-thread wake-ups (a task woken on one worker gets stolen by the other,
/// which was parked), and on a virtual machine each wake-up of a parked thread costs tens of
/// microseconds; measured with `examples/python/bench.py` on 2 cores, one worker was faster both for
/// sequential calls and with 100 in flight.
///
/// # Panics
///
/// If the operating system refuses to start the worker threads; nothing can run without them.
pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(
                std::env::var("PULSING_TOKIO_WORKERS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .unwrap_or(1),
            )
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
