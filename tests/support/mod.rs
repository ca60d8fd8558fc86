//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulsing::{Actor, ActorError, Context, Message};
use tokio::sync::Semaphore;

/// Every test body runs under this bound so a bug shows as a failure, not a hang.
pub const TEST_BOUND: Duration = Duration::from_secs(20);

/// Runs `fut` to completion within [`TEST_BOUND`] or panics.
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, fut)
        .await
        .expect("test exceeded its time bound")
}

/// Replies with what it receives.
pub struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(msg)
    }
}

/// Blocks each handler until a permit is released with [`Gate::open`]; records payloads it handled.
#[derive(Clone)]
pub struct Gate {
    pub permits: Arc<Semaphore>,
    pub entered: Arc<Semaphore>,
    pub handled: Arc<Mutex<Vec<Vec<u8>>>>,
    pub stopped: Arc<AtomicBool>,
}

impl Gate {
    pub fn new() -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(0)),
            entered: Arc::new(Semaphore::new(0)),
            handled: Arc::default(),
            stopped: Arc::default(),
        }
    }

    /// Lets `n` more handlers finish.
    pub fn open(&self, n: usize) {
        self.permits.add_permits(n);
    }

    /// Waits until a handler has started (and is now blocked on the gate).
    pub async fn wait_entered(&self) {
        self.entered.acquire().await.expect("open").forget();
    }

    pub fn handled(&self) -> Vec<Vec<u8>> {
        self.handled.lock().unwrap().clone()
    }
}

impl Actor for Gate {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        self.entered.add_permits(1);
        self.permits.acquire().await.expect("open").forget();
        if let Some(p) = msg.payload() {
            self.handled.lock().unwrap().push(p.to_vec());
        }
        Ok(msg)
    }

    async fn on_stop(&mut self, _: &mut Context) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// A counter that panics on "boom", fails on "fail", counts "inc", answers "get".
pub struct Fragile {
    pub value: u64,
    pub starts: Arc<AtomicU64>,
}

impl Fragile {
    /// A fresh instance (value 0) counting its starts in `starts`.
    pub fn new(starts: &Arc<AtomicU64>) -> Fragile {
        Fragile {
            value: 0,
            starts: starts.clone(),
        }
    }
}

impl Actor for Fragile {
    async fn on_start(&mut self, _: &mut Context) -> Result<(), ActorError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn receive(&mut self, msg: Message, ctx: &mut Context) -> Result<Message, ActorError> {
        match msg.msg_type() {
            Some("boom") => panic!("boom requested"),
            Some("fail") => Err(ActorError::with_type("ValueError", "fail requested")),
            Some("inc") => {
                self.value += 1;
                Ok(value(self.value))
            }
            Some("restarts") => Ok(value(ctx.restart_count() as u64)),
            _ => Ok(value(self.value)),
        }
    }
}

pub fn value(v: u64) -> Message {
    Message::single("value", v.to_string())
}

pub fn read_value(m: &Message) -> u64 {
    std::str::from_utf8(m.payload().expect("single message"))
        .expect("utf8")
        .parse()
        .expect("number")
}
