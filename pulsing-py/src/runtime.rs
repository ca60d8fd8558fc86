//! The Tokio runtime that runs every Rust future of the module, started once per process.
//!
//! Python code never runs on it: its thread only moves bytes and completes work items, and hands
//! results to the asyncio loop through a [`Hub`](crate::hub::Hub). Nothing here takes the GIL.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};

static RUNTIME: OnceLock<Handle> = OnceLock::new();

/// The module's runtime: a current-thread runtime driven by one dedicated thread (`pulsing-tokio`),
/// timers and IO enabled. Started on first use.
///
/// Why one thread: the machines Pulsing targets have few cores and the Python thread is busy too; a
/// second worker mostly adds cross-thread wake-ups, and on a virtual machine each wake-up of a parked
/// thread costs tens of microseconds.
///
/// Why the current-thread scheduler rather than a one-worker multi-thread one: the multi-thread
/// scheduler runs a task woken by another task next (its "LIFO slot"). A batch of a hundred asks
/// then makes the HTTP/2 connection task run after each request, one `writev` per request, and the
/// server likewise writes each response on its own. The current-thread scheduler queues woken tasks
/// behind the ones already ready, so the connection task writes the whole batch at once. Measured
/// with `examples/python/bench.py` (remote, 100 in flight): see the README.
///
/// # Panics
///
/// If the operating system refuses to start the thread; nothing can run without it.
pub(crate) fn runtime() -> &'static Handle {
    RUNTIME.get_or_init(|| {
        let rt = Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("pulsing: cannot start the Tokio runtime");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("pulsing-tokio".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("pulsing: cannot start the Tokio thread");
        handle
    })
}

/// Spawns `fut` on the runtime; returns at once.
pub(crate) fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    runtime().spawn(fut);
}

/// Runs `fut` to completion from a thread that is not the runtime's, giving up after `bound`.
/// Only for one-off work at import time; the callers release the GIL around it.
pub(crate) fn block_on_bounded<F>(fut: F, bound: Duration) -> Option<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    runtime().block_on(async move { tokio::time::timeout(bound, fut).await.ok() })
}
