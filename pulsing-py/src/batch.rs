//! [`Batch`]: a queue that many threads fill and one consumer empties a batch at a time, woken once
//! per batch. The hub (Tokio → asyncio), the submission queue (asyncio → Tokio) and the queue of log
//! records (any thread → asyncio, bounded) are all this, with a different way of waking their
//! consumer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Items waiting for one consumer, and whether a wake-up of that consumer is already on its way.
pub(crate) struct Batch<T> {
    items: Mutex<Vec<T>>,
    /// Set by the push that must wake the consumer, cleared by the consumer just before it takes the
    /// items: while it is set, a push needs no wake-up of its own.
    wake_pending: AtomicBool,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch::new()
    }
}

impl<T> Batch<T> {
    /// An empty batch (usable in a `static`).
    pub(crate) const fn new() -> Batch<T> {
        Batch {
            items: Mutex::new(Vec::new()),
            wake_pending: AtomicBool::new(false),
        }
    }

    /// Queues `item`; returns whether the caller must now wake the consumer.
    pub(crate) fn push(&self, item: T) -> bool {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(item);
        !self.wake_pending.swap(true, Ordering::SeqCst)
    }

    /// Queues `item` unless `capacity` items wait already. Returns whether it was queued, and whether
    /// the caller must now wake the consumer (also when it was not: the consumer then learns of the
    /// drop the caller counted).
    pub(crate) fn push_bounded(&self, item: T, capacity: usize) -> (bool, bool) {
        let queued = {
            let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
            let room = items.len() < capacity;
            if room {
                items.push(item);
            }
            room
        };
        (queued, !self.wake_pending.swap(true, Ordering::SeqCst))
    }

    /// Whether a wake-up of the consumer is on its way (items may be waiting).
    pub(crate) fn is_pending(&self) -> bool {
        self.wake_pending.load(Ordering::SeqCst)
    }

    /// Moves every queued item into `out` (empty), for the consumer.
    ///
    /// Clears the pending wake-up before taking: a push that sees it clear wakes the consumer again;
    /// one that saw it set queued its item before this take.
    pub(crate) fn take_into(&self, out: &mut Vec<T>) {
        self.wake_pending.store(false, Ordering::SeqCst);
        std::mem::swap(
            out,
            &mut *self.items.lock().unwrap_or_else(|p| p.into_inner()),
        );
    }

    /// Drops every queued item.
    pub(crate) fn clear(&self) {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
