//! Actors that forward their messages (`Actor::FORWARDS`) with an async `forward`: a full queue
//! behind the actor makes senders wait on its mailbox, and stop, panics and expired asks are handled
//! as for `receive`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulsing::{
    Actor, ActorError, ActorSystem, Context, Message, PulsingError, Responder, RestartPolicy,
    SpawnOptions,
};
use support::bounded;
use tokio::sync::{mpsc, Semaphore};

const MAILBOX_WAIT: Duration = Duration::from_millis(100);
const SHUTDOWN: Duration = Duration::from_millis(300);

async fn standalone() -> ActorSystem {
    ActorSystem::builder()
        .mailbox_wait(MAILBOX_WAIT)
        .shutdown_timeout(SHUTDOWN)
        .build()
        .await
        .expect("standalone system")
}

/// What the Python proxy does: hands each message to a bounded queue that another task drains,
/// waiting in `forward` while the queue is full.
struct Queueing {
    queue: mpsc::Sender<(Message, Responder)>,
    /// A permit each time `forward` finds the queue full and starts waiting.
    waiting: Arc<Semaphore>,
}

impl Actor for Queueing {
    const FORWARDS: bool = true;

    async fn receive(&mut self, _: Message, _: &mut Context) -> Result<Message, ActorError> {
        unreachable!("FORWARDS actors get forward() instead")
    }

    async fn forward(&mut self, msg: Message, reply: Responder, _: &mut Context) {
        if self.queue.capacity() == 0 {
            self.waiting.add_permits(1);
        }
        let _ = self.queue.send((msg, reply)).await;
    }
}

/// The far side of a [`Queueing`] actor: handles one message per gate permit, in order, recording
/// payloads and answering with the message itself.
struct Far {
    gate: Arc<Semaphore>,
    handled: Arc<Mutex<Vec<Vec<u8>>>>,
    waiting: Arc<Semaphore>,
}

/// Spawns a [`Queueing`] actor `name` (mailbox `capacity`) in front of a queue of `room` messages
/// and the task draining it.
async fn queueing(system: &ActorSystem, name: &str, capacity: usize, room: usize) -> Far {
    let (tx, mut rx) = mpsc::channel::<(Message, Responder)>(room);
    let far = Far {
        gate: Arc::new(Semaphore::new(0)),
        handled: Arc::default(),
        waiting: Arc::new(Semaphore::new(0)),
    };
    let actor = Queueing {
        queue: tx,
        waiting: far.waiting.clone(),
    };
    system
        .spawn_with(actor, name, SpawnOptions::new().mailbox_capacity(capacity))
        .await
        .unwrap();
    let (gate, handled) = (far.gate.clone(), far.handled.clone());
    tokio::spawn(async move {
        while let Some((msg, reply)) = rx.recv().await {
            gate.acquire().await.expect("open").forget();
            handled
                .lock()
                .unwrap()
                .push(msg.payload().unwrap().to_vec());
            reply.send(Ok(msg));
        }
    });
    far
}

/// Waits until the system has handled `n` messages (a forwarded one counts once `forward` returns).
async fn handled_reaches(system: &ActorSystem, n: u64) {
    while system.stats().messages_handled < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn expired_reaches(system: &ActorSystem, n: u64) {
    while system.stats().expired_asks < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_behind_a_forwarding_actor_makes_senders_wait_then_fail_with_mailbox_full() {
    bounded(async {
        let system = standalone().await;
        let far = queueing(&system, "proxy", 1, 1).await;
        let r = system.find("proxy").await.unwrap();
        // One held by the far side, one in its queue, one in `forward`, one in the mailbox: then
        // the mailbox stays full and a sender waits `MAILBOX_WAIT` for room.
        let mut accepted = 0u8;
        let refused = loop {
            let started = Instant::now();
            match r.tell(Message::single("m", vec![accepted])).await {
                Ok(()) => accepted += 1,
                Err(e) => break (e, started.elapsed()),
            }
            assert!(accepted < 10, "the mailbox never filled up");
        };
        assert!(refused.0.is_mailbox_full(), "{}", refused.0);
        assert!(refused.1 >= MAILBOX_WAIT, "{:?}", refused.1);
        assert!(accepted <= 4, "accepted {accepted}");

        far.gate.add_permits(100);
        let reply = r.ask(Message::single("m", vec![accepted])).await.unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), &[accepted]);
        let want: Vec<Vec<u8>> = (0..=accepted).map(|i| vec![i]).collect();
        assert_eq!(*far.handled.lock().unwrap(), want, "all handled, in order");
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_forward_waits_drops_it_at_the_deadline_and_answers_stopped() {
    bounded(async {
        let system = standalone().await;
        let far = queueing(&system, "proxy", 4, 1).await;
        let r = system.find("proxy").await.unwrap();
        let ask = |p: u8| {
            let r = r.clone();
            tokio::spawn(async move { r.ask(Message::single("m", vec![p])).await })
        };
        // One at a time, so that they reach the actor in this order.
        let held = ask(0);
        handled_reaches(&system, 1).await;
        let queued = ask(1);
        handled_reaches(&system, 2).await;
        let waiting = ask(2);
        far.waiting.acquire().await.unwrap().forget();
        // Now `forward` waits for room for message 2.
        let started = Instant::now();
        system.stop("proxy").await.unwrap();
        assert!(started.elapsed() >= SHUTDOWN, "{:?}", started.elapsed());
        let e = waiting.await.unwrap().unwrap_err();
        assert!(matches!(e, PulsingError::Stopped(_)), "{e:?}");
        // What was handed over before is still answered by the far side.
        far.gate.add_permits(2);
        let mut handed = Vec::new();
        for a in [held, queued] {
            handed.push(a.await.unwrap().unwrap().payload().unwrap().to_vec());
        }
        assert_eq!(handed, vec![vec![0], vec![1]]);
        system.shutdown().await;
    })
    .await;
}

/// Panics in `forward` on `boom` (after an await), answers everything else at once.
struct Brittle;

impl Actor for Brittle {
    const FORWARDS: bool = true;

    async fn receive(&mut self, _: Message, _: &mut Context) -> Result<Message, ActorError> {
        unreachable!("FORWARDS actors get forward() instead")
    }

    async fn forward(&mut self, msg: Message, reply: Responder, _: &mut Context) {
        tokio::task::yield_now().await;
        if msg.msg_type() == Some("boom") {
            panic!("boom requested");
        }
        reply.send(Ok(msg));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_forward_answers_stopped_and_applies_the_restart_policy() {
    bounded(async {
        let system = standalone().await;
        let once = system.spawn(Brittle, "once").await.unwrap();
        let e = once.ask(Message::single("boom", "")).await.unwrap_err();
        assert!(matches!(e, PulsingError::Stopped(_)), "{e:?}");
        // The responder answers while the panic unwinds; the actor's task counts the panic just
        // after, so the asker may read the counter first.
        let counted = tokio::time::Instant::now() + Duration::from_secs(5);
        while system.stats().panics == 0 && tokio::time::Instant::now() < counted {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(system.stats().panics, 1);
        let e = once.ask(Message::single("m", "")).await.unwrap_err();
        assert!(e.is_stopped(), "RestartPolicy::Never stops the actor: {e}");

        let policy = RestartPolicy::OnFailure {
            max_restarts: 1,
            backoff: Duration::from_millis(1),
        };
        let again = system
            .spawn_factory(|| Brittle, "again", SpawnOptions::new().restart(policy))
            .await
            .unwrap();
        assert!(again.ask(Message::single("boom", "")).await.is_err());
        again.ask(Message::single("m", "")).await.unwrap();
        assert_eq!(system.stats().restarts, 1);
        system.shutdown().await;
    })
    .await;
}

/// Keeps each ask's responder; on `expire` expires those whose caller gave up, on `expire_all`
/// every one.
struct Keeper(Vec<Responder>);

impl Actor for Keeper {
    const FORWARDS: bool = true;

    async fn receive(&mut self, _: Message, _: &mut Context) -> Result<Message, ActorError> {
        unreachable!("FORWARDS actors get forward() instead")
    }

    async fn forward(&mut self, msg: Message, reply: Responder, _: &mut Context) {
        match msg.msg_type() {
            Some("expire") => {
                let (closed, open) = self.0.drain(..).partition(Responder::is_closed);
                self.0 = open;
                closed.into_iter().for_each(Responder::expire);
            }
            Some("expire_all") => self.0.drain(..).for_each(Responder::expire),
            _ => self.0.push(reply),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_responder_is_dropped_unanswered_and_counted_in_expired_asks() {
    bounded(async {
        let system = standalone().await;
        let r = system.spawn(Keeper(Vec::new()), "keeper").await.unwrap();
        let e = r
            .ask_with_timeout(Message::single("m", ""), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert_eq!(system.stats().expired_asks, 0);
        r.tell(Message::single("expire", "")).await.unwrap();
        expired_reaches(&system, 1).await;

        // A caller still waiting when its ask is expired hears `Stopped`.
        let waiting = {
            let r = r.clone();
            tokio::spawn(async move { r.ask(Message::single("m", "")).await })
        };
        handled_reaches(&system, 3).await;
        r.tell(Message::single("expire_all", "")).await.unwrap();
        assert!(waiting.await.unwrap().unwrap_err().is_stopped());
        expired_reaches(&system, 2).await;
        system.shutdown().await;
    })
    .await;
}
