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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulsing::{ActorError, ActorRef, Message, Responder};
use tokio::sync::Notify;

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
}

impl Job {
    /// Runs an ask or a tell; an answer is sent by [`run`] itself, without a task.
    async fn run(self, hub: Arc<HubShared>) {
        match self {
            Job::Ask {
                id,
                target,
                msg,
                timeout,
                decode,
            } => {
                let reply = target.ask_with_timeout(msg, timeout).await;
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
                job => {
                    tokio::spawn(job.run(hub.clone()));
                }
            }
        }
    }
}
