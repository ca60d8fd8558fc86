//! [`Batch`]: a queue that many threads fill and one consumer empties a batch at a time, woken once
//! per batch. The hub (Tokio → asyncio) and the submission queue (asyncio → Tokio) are both this,
//! with a different way of waking their consumer.

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
        Batch {
            items: Mutex::new(Vec::new()),
            wake_pending: AtomicBool::new(false),
        }
    }
}

impl<T> Batch<T> {
    /// Queues `item`; returns whether the caller must now wake the consumer.
    pub(crate) fn push(&self, item: T) -> bool {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(item);
        !self.wake_pending.swap(true, Ordering::SeqCst)
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
