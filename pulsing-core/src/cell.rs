//! A local actor's cell (its mailbox, stop signals and counters) and the task that runs it, including
//! supervision: what happens when a handler fails, panics, or the actor is asked to stop.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use tokio::sync::{oneshot, Notify};
use tokio::time::{timeout, timeout_at, Instant};

use crate::actor::{Actor, Context, RestartPolicy};
use crate::error::{ActorError, PulsingError};
use crate::mailbox::{Envelope, Inbox, MailboxSender, ReplyTo};
use crate::message::Message;
use crate::name::ActorName;
use crate::system::Shared;
use crate::visibility::Visibility;

/// A one-shot flag that tasks can wait on.
#[derive(Default)]
pub(crate) struct Event {
    set: AtomicBool,
    notify: Notify,
}

impl Event {
    pub(crate) fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Returns once the flag is set. Cancel safe.
    pub(crate) async fn wait(&self) {
        // `notified()` sees every `notify_waiters` from its creation on, so checking the flag after
        // creating it cannot miss a `set`.
        let notified = self.notify.notified();
        if self.is_set() {
            return;
        }
        notified.await;
    }
}

/// Counters the actor's task writes for each message, on a cache line of their own: senders read
/// the cell's other fields on every send, and sharing a line with these writes would make each send
/// miss the cache.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Progress {
    /// Messages handled so far.
    pub(crate) handled: AtomicU64,
    /// Messages the actor took out of its mailbox and has not handled yet (see [`Inbox`]).
    pub(crate) taken: AtomicUsize,
}

impl Progress {
    /// Counts one handled message. Only the actor's task writes the counter: a plain load and
    /// store, no locked instruction.
    fn count_handled(&self) {
        let handled = self.handled.load(Ordering::Relaxed);
        self.handled.store(handled + 1, Ordering::Relaxed);
    }
}

/// Everything shared between an actor's task and the refs pointing at it.
pub(crate) struct LocalCell {
    /// Distinguishes this incarnation from a later actor spawned under the same name.
    pub(crate) id: u64,
    /// The actor's name, or for an anonymous actor its generated id.
    pub(crate) name: ActorName,
    pub(crate) visibility: Visibility,
    pub(crate) mailbox: MailboxSender,
    pub(crate) shared: Arc<Shared>,
    /// Counters only the actor's task writes.
    pub(crate) progress: Progress,
    stop_requested: Event,
    stop_deadline: Mutex<Option<Instant>>,
    pub(crate) stopped: Event,
}

impl LocalCell {
    pub(crate) fn new(
        id: u64,
        name: ActorName,
        visibility: Visibility,
        mailbox: MailboxSender,
        shared: Arc<Shared>,
    ) -> LocalCell {
        LocalCell {
            id,
            name,
            visibility,
            mailbox,
            shared,
            progress: Progress::default(),
            stop_requested: Event::default(),
            stop_deadline: Mutex::new(None),
            stopped: Event::default(),
        }
    }

    /// Asks the actor to stop: it closes its mailbox, handles what is queued until `deadline`, answers
    /// the rest with [`PulsingError::Stopped`], runs `on_stop`. The earliest deadline asked for wins.
    pub(crate) fn request_stop(&self, deadline: Instant) {
        {
            let mut d = self.stop_deadline.lock().unwrap_or_else(|p| p.into_inner());
            *d = Some(d.map_or(deadline, |old| old.min(deadline)));
        }
        self.stop_requested.set();
    }

    /// Messages waiting: in the mailbox, or taken out of it and not handled yet.
    pub(crate) fn queued(&self) -> usize {
        self.mailbox.len() + self.progress.taken.load(Ordering::Relaxed)
    }

    fn stop_deadline(&self) -> Instant {
        let d = self.stop_deadline.lock().unwrap_or_else(|p| p.into_inner());
        d.unwrap_or_else(Instant::now)
    }
}

/// Where a restarted actor's new state comes from.
pub(crate) enum Source<A> {
    /// A single instance: the actor cannot be restarted.
    Instance,
    /// A factory, called for each restart.
    Factory(Box<dyn FnMut() -> A + Send>),
}

/// How the message loop ended.
enum Exit {
    /// Stopped on request; the instance is sound and `on_stop` runs.
    Requested,
    /// The instance panicked or failed to restart; `on_stop` is skipped.
    Broken,
}

type Caught<T> = Result<T, Box<dyn Any + Send>>;

async fn catch<F: std::future::Future>(f: F) -> Caught<F::Output> {
    AssertUnwindSafe(f).catch_unwind().await
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs one actor until it stops. `started` learns how `on_start` went.
pub(crate) async fn run<A: Actor>(
    mut actor: A,
    mut source: Source<A>,
    mut inbox: Inbox,
    cell: Arc<LocalCell>,
    mut ctx: Context,
    policy: RestartPolicy,
    started: oneshot::Sender<Result<(), PulsingError>>,
) {
    let start = match catch(actor.on_start(&mut ctx)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PulsingError::Actor(e)),
        Err(p) => Err(PulsingError::Panicked {
            actor: cell.name.to_string(),
            message: panic_message(&*p),
        }),
    };
    let exit = if start.is_ok() {
        let _ = started.send(Ok(()));
        message_loop(&mut actor, &mut source, &mut inbox, &cell, &mut ctx, policy).await
    } else {
        let _ = started.send(start);
        Exit::Broken
    };
    finish(actor, exit, inbox, &cell, ctx).await;
}

async fn message_loop<A: Actor>(
    actor: &mut A,
    source: &mut Source<A>,
    inbox: &mut Inbox,
    cell: &Arc<LocalCell>,
    ctx: &mut Context,
    policy: RestartPolicy,
) -> Exit {
    let shared = &*cell.shared;
    // Set once a stop is requested: the mailbox is closed and queued work must finish by then.
    let mut deadline: Option<Instant> = None;
    loop {
        let env = match deadline {
            Some(d) => {
                if Instant::now() >= d {
                    return Exit::Requested;
                }
                match timeout_at(d, inbox.recv()).await {
                    Ok(Some(env)) => env,
                    _ => return Exit::Requested,
                }
            }
            None => {
                // Fast path while a batch taken from the mailbox lasts: no `select!`, one atomic
                // load for the stop flag. Spend coop budget per message to keep yielding to other
                // tasks on this worker under a steady stream of messages.
                if cell.stop_requested.is_set() {
                    // Noticed here too, not only while idle: under a steady stream of messages the
                    // mailbox is never empty, and the stop must still close it.
                    deadline = Some(begin_stop(cell, inbox));
                    continue;
                }
                match inbox.next_taken() {
                    Some(env) => {
                        tokio::task::consume_budget().await;
                        env
                    }
                    None => tokio::select! {
                        biased;
                        env = inbox.recv() => match env {
                            Some(env) => env,
                            None => return Exit::Requested,
                        },
                        () = cell.stop_requested.wait() => {
                            deadline = Some(begin_stop(cell, inbox));
                            continue;
                        }
                    },
                }
            }
        };
        // Only this task writes the counter: a plain store, no locked instruction.
        cell.progress
            .taken
            .store(inbox.taken_len(), Ordering::Relaxed);
        let Envelope { msg, reply } = env;
        if reply.as_ref().is_some_and(|r| r.is_closed()) {
            // The caller gave up (timeout or dropped future): at-most-once lets us skip the work.
            shared.counters.expired_asks.fetch_add(1, Ordering::Relaxed);
            continue;
        }

        if A::FORWARDS {
            // The actor takes the reply slot and answers when it likes (see `Actor::forward`).
            let responder = Responder {
                reply,
                cell: cell.clone(),
            };
            let outcome = until_stopped(
                actor.forward(msg, responder, ctx),
                cell,
                inbox,
                &mut deadline,
            )
            .await;
            cell.progress.count_handled();
            match outcome {
                // The deadline passed while `forward` waited: dropping its future dropped the
                // responder, which answered `Stopped`.
                None => return Exit::Requested,
                Some(Ok(())) => {}
                Some(Err(panic)) => {
                    // The responder was dropped while unwinding: its caller got `Stopped`.
                    shared.counters.panics.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(actor = %cell.name, "forward panicked: {}", panic_message(&*panic));
                    let OnRestart::Continue =
                        restart(actor, source, cell, ctx, policy, &mut deadline, inbox).await
                    else {
                        return Exit::Broken;
                    };
                }
            }
            if ctx.stop_requested {
                return Exit::Requested;
            }
            continue;
        }

        let outcome = until_stopped(actor.receive(msg, ctx), cell, inbox, &mut deadline).await;
        cell.progress.count_handled();

        match outcome {
            None => {
                // Shutdown deadline passed while the handler ran: it was cancelled.
                answer(
                    shared,
                    reply,
                    Err(PulsingError::Stopped(cell.name.to_string())),
                );
                return Exit::Requested;
            }
            Some(Ok(result)) => answer(shared, reply, result.map_err(PulsingError::Actor)),
            Some(Err(panic)) => {
                shared.counters.panics.fetch_add(1, Ordering::Relaxed);
                let err = PulsingError::Panicked {
                    actor: cell.name.to_string(),
                    message: panic_message(&*panic),
                };
                tracing::error!(actor = %cell.name, "handler panicked: {err}");
                answer(shared, reply, Err(err));
                let OnRestart::Continue =
                    restart(actor, source, cell, ctx, policy, &mut deadline, inbox).await
                else {
                    return Exit::Broken;
                };
            }
        }
        if ctx.stop_requested {
            return Exit::Requested;
        }
    }
}

/// Closes the mailbox on a stop request and returns the deadline queued work must meet.
fn begin_stop(cell: &LocalCell, inbox: &mut Inbox) -> Instant {
    inbox.close();
    cell.stop_deadline()
}

/// Runs one handler future to completion, catching a panic, unless a stop deadline passes first:
/// then the future is dropped and `None` returned. A stop requested meanwhile sets `deadline` (and
/// closes the mailbox) without interrupting the handler before it.
async fn until_stopped<F: std::future::Future>(
    handler: F,
    cell: &LocalCell,
    inbox: &mut Inbox,
    deadline: &mut Option<Instant>,
) -> Option<Caught<F::Output>> {
    let mut handler = pin!(catch(handler));
    loop {
        match *deadline {
            Some(d) => break timeout_at(d, &mut handler).await.ok(),
            None => tokio::select! {
                biased;
                r = &mut handler => break Some(r),
                () = cell.stop_requested.wait() => *deadline = Some(begin_stop(cell, inbox)),
            },
        }
    }
}

enum OnRestart {
    Continue,
    Stop,
}

/// Applies `policy` after a panic: rebuilds the instance from the factory, or says to stop.
async fn restart<A: Actor>(
    actor: &mut A,
    source: &mut Source<A>,
    cell: &LocalCell,
    ctx: &mut Context,
    policy: RestartPolicy,
    deadline: &mut Option<Instant>,
    inbox: &mut Inbox,
) -> OnRestart {
    let RestartPolicy::OnFailure {
        max_restarts,
        backoff,
    } = policy
    else {
        return OnRestart::Stop;
    };
    let Source::Factory(factory) = source else {
        return OnRestart::Stop;
    };
    if ctx.restarts >= max_restarts || deadline.is_some() {
        return OnRestart::Stop;
    }
    tokio::select! {
        () = tokio::time::sleep(backoff) => {}
        () = cell.stop_requested.wait() => {
            inbox.close();
            *deadline = Some(cell.stop_deadline());
            return OnRestart::Stop;
        }
    }
    let Ok(fresh) = std::panic::catch_unwind(AssertUnwindSafe(&mut *factory)) else {
        tracing::error!(actor = %cell.name, "actor factory panicked; stopping");
        return OnRestart::Stop;
    };
    *actor = fresh;
    ctx.restarts += 1;
    cell.shared
        .counters
        .restarts
        .fetch_add(1, Ordering::Relaxed);
    match catch(actor.on_start(ctx)).await {
        Ok(Ok(())) => OnRestart::Continue,
        Ok(Err(e)) => {
            tracing::error!(actor = %cell.name, "on_start failed after restart: {e}; stopping");
            OnRestart::Stop
        }
        Err(_) => {
            tracing::error!(actor = %cell.name, "on_start panicked after restart; stopping");
            OnRestart::Stop
        }
    }
}

/// Sends the outcome to the asker, or, for a tell, records a failure nobody else would see.
fn answer(shared: &Shared, reply: Option<ReplyTo>, result: Result<Message, PulsingError>) {
    match reply {
        Some(r) => r.send(result),
        None => {
            if let Err(e) = result {
                shared.counters.count_error(&e);
                tracing::warn!("a told message failed: {e}");
            }
        }
    }
}

/// Closes the mailbox, answers what is still queued, runs `on_stop`, and removes the actor.
async fn finish<A: Actor>(
    mut actor: A,
    exit: Exit,
    mut inbox: Inbox,
    cell: &Arc<LocalCell>,
    mut ctx: Context,
) {
    // Leave the registry before closing the mailbox, so that once a send fails with `Stopped`,
    // `find` no longer returns this actor.
    let system = ctx.system.clone();
    let registered = system.forget_actor(cell);
    inbox.close();
    let shared = &*cell.shared;
    while let Some(env) = inbox.try_recv() {
        let err = PulsingError::Stopped(cell.name.to_string());
        if env.reply.is_none() {
            shared.counters.count_error(&err);
        }
        answer(shared, env.reply, Err(err));
    }
    cell.progress.taken.store(0, Ordering::Relaxed);
    if let Exit::Requested = exit {
        let bound = shared.config.shutdown_timeout;
        match timeout(bound, catch(actor.on_stop(&mut ctx))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!(actor = %cell.name, "on_stop panicked"),
            Err(_) => tracing::warn!(actor = %cell.name, "on_stop did not finish within {bound:?}"),
        }
    }
    drop(actor);
    if registered && cell.visibility == Visibility::Public {
        system.unpublish(&cell.name).await;
    }
    cell.stopped.set();
}

/// The reply slot of one message, for actors that answer later (see [`Actor::forward`]).
///
/// Answer once with [`send`](Self::send) or [`fail`](Self::fail), or, once the asker gave up, drop it
/// with [`expire`](Self::expire). Dropping it unanswered answers an ask with
/// [`PulsingError::Stopped`], so no asker is left waiting. For a told message there is nobody
/// to answer: an error sent to it is counted and logged, like a failing `receive` of a tell.
pub struct Responder {
    reply: Option<ReplyTo>,
    cell: Arc<LocalCell>,
}

impl Responder {
    /// Whether the sender waits for an answer (an ask) rather than having told.
    pub fn is_ask(&self) -> bool {
        self.reply.is_some()
    }

    /// Whether the asker has given up (timed out or dropped its future); answering is then useless.
    pub fn is_closed(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| r.is_closed())
    }

    /// Answers with the handler's outcome.
    pub fn send(mut self, result: Result<Message, ActorError>) {
        answer(
            &self.cell.shared,
            self.reply.take(),
            result.map_err(PulsingError::Actor),
        );
    }

    /// Answers with a runtime error (for example [`PulsingError::Timeout`] or
    /// [`PulsingError::Stopped`]).
    pub fn fail(mut self, err: PulsingError) {
        answer(&self.cell.shared, self.reply.take(), Err(err));
    }

    /// Drops an ask whose caller already gave up ([`is_closed`](Self::is_closed)) without answering
    /// or handling it, and counts it in [`SystemStats::expired_asks`](crate::SystemStats::expired_asks),
    /// as the runtime does for an expired ask it finds in a mailbox. A caller still waiting gets
    /// [`PulsingError::Stopped`]. For a told message it only drops the message.
    pub fn expire(mut self) {
        if self.reply.take().is_some() {
            self.cell
                .shared
                .counters
                .expired_asks
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(r) = self.reply.take() {
            r.send(Err(PulsingError::Stopped(self.cell.name.to_string())));
        }
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("actor", &self.cell.name)
            .field("ask", &self.is_ask())
            .finish()
    }
}
