//! The bound on TLS handshakes in progress ([`HttpConfig::max_handshakes`](crate::HttpConfig::max_handshakes)).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

/// The TLS handshakes in progress, oldest first, at most `max` of them. A connection that finds
/// them all taken closes the oldest to take its place, instead of being closed itself: a flood of
/// connections that start a handshake and never finish it (they hold their place until the
/// handshake timeout) then only delays each newcomer until `max` newer ones have arrived, so a
/// real handshake (milliseconds on a LAN) still gets through, where a plain limit would close
/// every newcomer, a node joining among them, for as long as the flood goes on.
pub(super) struct Handshakes {
    max: usize,
    /// By arrival (a growing number): what closes each.
    open: Mutex<(u64, BTreeMap<u64, CancellationToken>)>,
}

impl Handshakes {
    pub(super) fn new(max: usize) -> Handshakes {
        Handshakes {
            max: max.max(1),
            open: Mutex::default(),
        }
    }

    /// A place for a new handshake, closing the oldest one if all are taken.
    pub(super) fn enter(&self) -> HandshakeSlot<'_> {
        let evicted = CancellationToken::new();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (next, slots) = &mut *open;
        while slots.len() >= self.max {
            if let Some((_, oldest)) = slots.pop_first() {
                oldest.cancel();
            }
        }
        let id = *next;
        *next += 1;
        slots.insert(id, evicted.clone());
        HandshakeSlot {
            of: self,
            id,
            evicted,
        }
    }
}

/// A handshake's place in [`Handshakes`], given back when dropped.
pub(super) struct HandshakeSlot<'a> {
    of: &'a Handshakes,
    id: u64,
    evicted: CancellationToken,
}

impl HandshakeSlot<'_> {
    /// Completes when a newer handshake took this one's place.
    pub(super) async fn evicted(&self) {
        self.evicted.cancelled().await;
    }
}

impl Drop for HandshakeSlot<'_> {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(|p| p.into_inner());
        open.1.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handshake over the bound closes the oldest in progress, not itself; one that ends gives
    /// its place back.
    #[test]
    fn a_newcomer_over_the_bound_takes_the_oldest_place() {
        let h = Handshakes::new(2);
        let first = h.enter();
        let second = h.enter();
        assert!(!first.evicted.is_cancelled() && !second.evicted.is_cancelled());
        let third = h.enter();
        assert!(first.evicted.is_cancelled(), "the oldest is closed");
        assert!(!second.evicted.is_cancelled() && !third.evicted.is_cancelled());
        drop(second);
        let fourth = h.enter();
        assert!(
            !third.evicted.is_cancelled() && !fourth.evicted.is_cancelled(),
            "a place given back is taken without closing anyone"
        );
        drop(first);
        assert_eq!(h.open.lock().unwrap().1.len(), 2);
    }
}
