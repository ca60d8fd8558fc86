//! The way in, from asyncio to Tokio: asks, tells and Python actors' replies queued by the loop
//! thread, taken in batches by one Tokio task.
//!
//! Spawning a task from a thread outside the runtime goes through the runtime's shared inject queue
//! and may have to wake a parked worker (a system call) — for every call. Instead the loop thread
//! appends each call to a [`Submissions`] queue (a mutex-protected `Vec`, no Python object in it) and
//! only the first call after the queue was taken wakes the [`run`] task; that task takes the whole
//! queue and spawns one task per call from inside the runtime, which is cheap. So a burst of calls
//! (an `asyncio.gather` of a hundred) costs one cross-thread wake-up on the way in, as the
//! [`Hub`](crate::hub::Hub) costs one on the way out. Replies of Python actors to messages from the
//! core system take the same queue: answering a [`Responder`] wakes the task waiting for it, which
//! from the loop thread is again a remote schedule; from the queue's task it is a local one.
//!
//! Calls are taken in the order they were queued, but calls in flight at the same time have no order
//! between them once started (nor had they when each was spawned on its own, nor does the transport
//! keep one): a caller that needs an order awaits each call before making the next, which this queue
//! does not change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulsing::{ActorError, ActorRef, Message, Responder};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::batch::Batch;
use crate::hub::{HubShared, Outcome};

/// One call from Python, completing the future registered in the hub under `id`.
pub(crate) enum Job {
    /// `target.ask_with_timeout(msg, timeout)`; completes with [`Outcome::Reply`], or with
    /// [`Outcome::Value`] for a method call (`decode`).
    Ask {
        id: u64,
        target: ActorRef,
        msg: Message,
        timeout: Duration,
        decode: bool,
    },
    /// `target.tell(msg)`; completes with [`Outcome::Unit`].
    Tell {
        id: u64,
        target: ActorRef,
        msg: Message,
    },
    /// A Python actor's answer to a message that came through the core system.
    Answer(Responder, Result<Message, ActorError>),
    /// The caller gave up on the ask `id` (cancelled): drop it, which cancels it at its node.
    Cancel(u64),
}

impl Job {
    /// Runs an ask or a tell; answers and cancellations are handled by [`run`] itself.
    async fn run(self, hub: Arc<HubShared>, running: Arc<Running>) {
        match self {
            Job::Ask {
                id,
                target,
                msg,
                timeout,
                decode,
            } => {
                let reply = target.ask_with_timeout(msg, timeout).await;
                running.finished(id);
                let outcome = if decode {
                    Outcome::Value(reply, timeout)
                } else {
                    Outcome::Reply(reply, timeout)
                };
                hub.complete(id, outcome);
            }
            Job::Tell { id, target, msg } => {
                hub.complete(id, Outcome::Unit(target.tell(msg).await));
            }
            Job::Answer(responder, result) => responder.send(result),
            Job::Cancel(_) => {}
        }
    }
}

/// The asks started and not finished, so that a cancelled one can be dropped. Touched only by the
/// runtime's thread (the submission task and the asks), so the lock is never contended.
#[derive(Default)]
pub(crate) struct Running {
    tasks: Mutex<HashMap<u64, AbortHandle>>,
}

impl Running {
    fn started(&self, id: u64, task: AbortHandle) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, task);
    }

    fn finished(&self, id: u64) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Drops the ask `id` if it still runs: its future is dropped, which resets a remote request
    /// (the serving node skips the message) and closes a local reply slot.
    fn cancel(&self, id: u64) {
        let task = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(task) = task {
            task.abort();
        }
    }
}

/// The queue of calls not yet started (see the module docs). `Send + Sync`, holds no Python object.
#[derive(Default)]
pub(crate) struct Submissions {
    jobs: Batch<Job>,
    wake: Notify,
    closed: AtomicBool,
}

impl Submissions {
    /// Queues `job`; never blocks on anything but the queue's mutex. After [`close`](Self::close) the
    /// job is dropped: an ask's or tell's future is left to the hub's `close`, which fails it; an
    /// answer's responder answers `Stopped`.
    pub(crate) fn push(&self, job: Job) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if self.jobs.push(job) {
            // Stores a permit if `run` is busy, so it goes round once more and sees the job.
            self.wake.notify_one();
        }
    }

    /// Stops [`run`] and drops the calls not yet started.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.jobs.clear();
        self.wake.notify_one();
    }
}

/// Starts the queued calls of `subs` and sends the queued answers, a batch per wake-up, until `subs`
/// is closed. Spawned once per hub on the module's runtime.
pub(crate) async fn run(subs: Arc<Submissions>, hub: Arc<HubShared>) {
    let running = Arc::new(Running::default());
    let mut batch = Vec::new();
    loop {
        subs.wake.notified().await;
        if subs.closed.load(Ordering::Acquire) {
            return;
        }
        subs.jobs.take_into(&mut batch);
        for job in batch.drain(..) {
            match job {
                Job::Answer(responder, result) => responder.send(result),
                Job::Cancel(id) => running.cancel(id),
                job @ Job::Ask { id, .. } => {
                    let task = tokio::spawn(job.run(hub.clone(), running.clone()));
                    // Registered after the spawn, but the task cannot finish before this loop
                    // yields: the runtime has one thread.
                    running.started(id, task.abort_handle());
                }
                job => {
                    tokio::spawn(job.run(hub.clone(), running.clone()));
                }
            }
        }
    }
}
