//! [`Id`]: who a member is, as foca sees it: address + boot id + boot time + rejoin generation.

use std::net::SocketAddr;

use pulsing_core::NodeId;

/// One identity of one run of a node.
///
/// - `addr` and `node` (the boot id) name the run: a process restarted on the same address has a
///   new `node` and a later `boot`, so it wins the address conflict and replaces the old identity
///   everywhere (foca reports a rename; the old run is gone).
/// - `gen` counts rejoins of the same run: when the cluster declares this run down (a false
///   positive, a healed partition) foca renews the identity with `gen + 1` and rejoins at once,
///   keeping the boot id so refs made for this run stay valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Id {
    pub(crate) addr: SocketAddr,
    pub(crate) node: NodeId,
    /// Milliseconds since the Unix epoch (or the virtual clock) when the run started.
    pub(crate) boot: u64,
    pub(crate) gen: u32,
}

impl Id {
    /// The key deciding which of two identities on one address is newer.
    fn precedence(&self) -> (u64, u64, u32) {
        (self.boot, self.node.0, self.gen)
    }
}

impl foca::Identity for Id {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Id {
            gen: self.gen.checked_add(1)?,
            ..*self
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.precedence() > adversary.precedence()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(boot: u64, node: u64, gen: u32) -> Id {
        Id {
            addr: "127.0.0.1:9000".parse().unwrap(),
            node: NodeId(node),
            boot,
            gen,
        }
    }

    #[test]
    fn a_restarted_process_wins_the_address() {
        let old = id(10, 99, 5);
        let new = id(11, 1, 0);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn a_renewed_identity_keeps_the_boot_id_and_wins() {
        let a = id(10, 7, 0);
        let b = a.renew().unwrap();
        assert_eq!(b.node, a.node);
        assert_eq!(b.gen, 1);
        assert!(b.win_addr_conflict(&a));
    }
}
