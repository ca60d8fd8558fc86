//! A deterministic simulation of many nodes in one thread: a virtual clock, a seeded RNG, packet
//! loss, partitions, crashes and restarts. It drives the same [`Node`] logic as the tokio driver,
//! with the same exchange shape: each packet is one request whose answer comes back (or fails)
//! like a `Transport::gossip` call.
//!
//! Available in tests and with the `sim` feature (used by the `cluster_sim` example).
//!
//! ```
//! use std::time::Duration;
//! use pulsing_cluster::{sim::Sim, ClusterConfig};
//!
//! let mut sim = Sim::new(7, ClusterConfig::default());
//! let seed = sim.add_node(&[]);
//! for _ in 0..4 {
//!     sim.add_node(&[seed]);
//! }
//! let took = sim.run_until(Duration::from_secs(30), |s| s.converged());
//! assert!(took.is_some());
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use pulsing_core::{ActorName, Delivery, MembershipEvent, NodeId, PulsingError};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::config::ClusterConfig;
use crate::identity::Id;
use crate::node::{JoinState, Node, Transmit};

/// Index of a node slot (an address); a restart keeps the slot and its address.
pub type Slot = usize;

enum Ev {
    Deliver {
        from_inst: u64,
        from: SocketAddr,
        to: SocketAddr,
        payload: Bytes,
        sent: Duration,
    },
    Reply {
        inst: u64,
        peer: SocketAddr,
        result: Result<Bytes, PulsingError>,
    },
    Wake {
        inst: u64,
    },
}

struct Running {
    inst: u64,
    node: Node,
    next_wake: Option<Duration>,
}

struct SlotState {
    addr: SocketAddr,
    running: Option<Running>,
    group: u32,
}

/// The simulated cluster.
pub struct Sim {
    config: ClusterConfig,
    rng: SmallRng,
    now: Duration,
    queue: BTreeMap<(Duration, u64), Ev>,
    seq: u64,
    slots: Vec<SlotState>,
    by_addr: HashMap<SocketAddr, Slot>,
    by_inst: HashMap<u64, Slot>,
    next_inst: u64,
    loss: f64,
    latency: (Duration, Duration),
    log: Vec<String>,
    false_deaths: u64,
    rejoins: u64,
    packets: u64,
}

impl Sim {
    /// An empty simulation; `seed` decides every random choice (same seed, same trace).
    pub fn new(seed: u64, config: ClusterConfig) -> Sim {
        Sim {
            config,
            rng: SmallRng::seed_from_u64(seed),
            now: Duration::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            slots: Vec::new(),
            by_addr: HashMap::new(),
            by_inst: HashMap::new(),
            next_inst: 1,
            loss: 0.0,
            latency: (Duration::from_micros(200), Duration::from_millis(2)),
            log: Vec::new(),
            false_deaths: 0,
            rejoins: 0,
            packets: 0,
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Drops each packet (request or answer) with probability `loss`.
    pub fn set_loss(&mut self, loss: f64) {
        self.loss = loss.clamp(0.0, 1.0);
    }

    /// One-way latency, uniform in `[min, max]`.
    pub fn set_latency(&mut self, min: Duration, max: Duration) {
        self.latency = (min, max.max(min));
    }

    /// Starts a node on a new address (`127.0.0.1:10000+slot`) joining through `seeds`, and
    /// registers a public actor named `a<slot>` on it.
    pub fn add_node(&mut self, seeds: &[Slot]) -> Slot {
        let slot = self.slots.len();
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 10_000 + slot as u16));
        self.slots.push(SlotState {
            addr,
            running: None,
            group: 0,
        });
        self.by_addr.insert(addr, slot);
        self.boot(slot, seeds);
        slot
    }

    fn boot(&mut self, slot: Slot, seeds: &[Slot]) {
        let addr = self.slots[slot].addr;
        let id = Id {
            addr,
            node: NodeId(self.rng.random()),
            boot: self.now.as_millis() as u64 + 1,
            gen: 0,
        };
        let inst = self.next_inst;
        self.next_inst += 1;
        let mut node = Node::new(id, self.config.clone(), self.rng.random(), self.now);
        let seed_addrs = seeds.iter().map(|s| self.slots[*s].addr).collect();
        node.join(self.now, seed_addrs);
        let name = ActorName::new(&format!("a{slot}")).expect("valid name");
        node.register(self.now, &name);
        self.slots[slot].running = Some(Running {
            inst,
            node,
            next_wake: None,
        });
        self.by_inst.insert(inst, slot);
        self.note(format!("boot {addr} {}", id.node));
        self.after(slot);
    }

    /// Kills the node in `slot` (like `kill -9`): packets to it are refused from now on.
    pub fn crash(&mut self, slot: Slot) {
        if let Some(r) = self.slots[slot].running.take() {
            self.by_inst.remove(&r.inst);
            let addr = self.slots[slot].addr;
            self.note(format!("crash {addr}"));
        }
    }

    /// Crashes the node in `slot` and starts a new process on the same address (new boot id).
    pub fn restart(&mut self, slot: Slot, seeds: &[Slot]) {
        self.crash(slot);
        self.boot(slot, seeds);
    }

    /// The node in `slot` leaves gracefully.
    pub fn leave(&mut self, slot: Slot) {
        let now = self.now;
        if let Some(r) = self.slots[slot].running.as_mut() {
            r.node.leave(now);
        }
        self.after(slot);
        let addr = self.slots[slot].addr;
        self.note(format!("leave {addr}"));
        // The process exits once its leave is sent.
        if let Some(r) = self.slots[slot].running.take() {
            self.by_inst.remove(&r.inst);
        }
    }

    /// Publishes `name` on `slot` without its broadcast (a lost update; only anti-entropy can
    /// spread it).
    pub fn register_quietly(&mut self, slot: Slot, name: &str) {
        let name = ActorName::new(name).expect("valid name");
        if let Some(r) = self.slots[slot].running.as_mut() {
            r.node.register_quietly(&name);
        }
    }

    /// Publishes `name` on `slot` the normal way.
    pub fn register(&mut self, slot: Slot, name: &str) {
        let name = ActorName::new(name).expect("valid name");
        let now = self.now;
        if let Some(r) = self.slots[slot].running.as_mut() {
            r.node.register(now, &name);
        }
        self.after(slot);
    }

    /// Splits the network: nodes in different groups cannot reach each other. Slots not listed
    /// are in group 0.
    pub fn partition(&mut self, groups: &[&[Slot]]) {
        for s in &mut self.slots {
            s.group = 0;
        }
        for (g, members) in groups.iter().enumerate() {
            for slot in *members {
                self.slots[*slot].group = g as u32 + 1;
            }
        }
        self.note(format!("partition {groups:?}"));
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        for s in &mut self.slots {
            s.group = 0;
        }
        self.note("heal".into());
    }

    /// Whether `slot` runs a node.
    pub fn is_running(&self, slot: Slot) -> bool {
        self.slots[slot].running.is_some()
    }

    /// The boot id of the node in `slot`.
    pub fn node_id(&self, slot: Slot) -> Option<NodeId> {
        self.slots[slot].running.as_ref().map(|r| r.node.id().node)
    }

    /// Whether `slot` finished its join.
    pub fn joined(&self, slot: Slot) -> bool {
        self.slots[slot]
            .running
            .as_ref()
            .is_some_and(|r| r.node.join_state() == JoinState::Joined)
    }

    /// The boot ids `slot` sees alive or suspect (itself excluded).
    pub fn view(&self, slot: Slot) -> BTreeSet<NodeId> {
        self.slots[slot]
            .running
            .as_ref()
            .map(|r| r.node.live().collect())
            .unwrap_or_default()
    }

    /// What `lookup(name)` answers on `slot`: boot ids of other nodes with `name`.
    pub fn lookup(&self, slot: Slot, name: &str) -> Vec<NodeId> {
        self.slots[slot]
            .running
            .as_ref()
            .map(|r| r.node.lookup(name).into_iter().map(|l| l.node).collect())
            .unwrap_or_default()
    }

    /// The members `slot` reports (itself included), with states.
    pub fn members(&self, slot: Slot) -> Vec<pulsing_core::Member> {
        self.slots[slot]
            .running
            .as_ref()
            .map(|r| r.node.members())
            .unwrap_or_default()
    }

    fn running(&self) -> impl Iterator<Item = (Slot, &Running)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.running.as_ref().map(|r| (i, r)))
    }

    /// Every running node sees exactly the other running nodes, and holds each one's current
    /// registry version.
    pub fn converged(&self) -> bool {
        let ids: Vec<(Slot, NodeId)> = self.running().map(|(i, r)| (i, r.node.id().node)).collect();
        let own_versions: HashMap<NodeId, Option<u64>> = self
            .running()
            .map(|(_, r)| (r.node.id().node, r.node.version_of(r.node.id().node)))
            .collect();
        self.running().all(|(slot, r)| {
            let view: BTreeSet<NodeId> = r.node.live().collect();
            let expected: BTreeSet<NodeId> = ids
                .iter()
                .filter(|(s, _)| *s != slot)
                .map(|(_, n)| *n)
                .collect();
            view == expected
                && expected
                    .iter()
                    .all(|n| r.node.version_of(*n) == own_versions[n])
        })
    }

    /// No running node sees `node` or returns it from `lookup`.
    pub fn forgotten_everywhere(&self, node: NodeId) -> bool {
        self.running().all(|(_, r)| {
            !r.node.live().any(|n| n == node) && !r.node.lookup_all_nodes().contains(&node)
        })
    }

    /// `MemberDown` events seen about nodes that were running at that moment (one per observer).
    pub fn false_deaths(&self) -> u64 {
        self.false_deaths
    }

    /// How often a running node learnt that it had been declared down and rejoined under a
    /// renewed identity (a false death somewhere, even if no observer reported it).
    pub fn rejoins(&self) -> u64 {
        self.rejoins
    }

    /// Packets delivered so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The trace: boots, crashes, partitions and every membership event, with virtual times.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    fn note(&mut self, line: String) {
        self.log
            .push(format!("{:>9.3} {line}", self.now.as_secs_f64()));
    }

    /// Runs until the virtual clock reaches `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step(until) {}
        self.now = until;
    }

    /// Runs until `done` holds (checked every 10 ms of virtual time) or `max` passes; returns how
    /// long it took.
    pub fn run_until(
        &mut self,
        max: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let tick = Duration::from_millis(10);
        while self.now - start <= max {
            if done(self) {
                return Some(self.now - start);
            }
            self.run_for(tick);
        }
        None
    }

    /// Handles the next event if it is due by `until`.
    fn step(&mut self, until: Duration) -> bool {
        let Some(entry) = self.queue.first_entry() else {
            return false;
        };
        if entry.key().0 > until {
            return false;
        }
        let ((at, _), ev) = entry.remove_entry();
        self.now = at;
        match ev {
            Ev::Wake { inst } => {
                let Some(&slot) = self.by_inst.get(&inst) else {
                    return true;
                };
                let now = self.now;
                if let Some(r) = self.slots[slot].running.as_mut() {
                    r.next_wake = None;
                    r.node.handle_timeout(now);
                }
                self.after(slot);
            }
            Ev::Reply { inst, peer, result } => {
                let Some(&slot) = self.by_inst.get(&inst) else {
                    return true;
                };
                let now = self.now;
                if let Some(r) = self.slots[slot].running.as_mut() {
                    r.node.handle_reply(now, peer, result);
                }
                self.after(slot);
            }
            Ev::Deliver {
                from_inst,
                from,
                to,
                payload,
                sent,
            } => self.deliver(from_inst, from, to, &payload, sent),
        }
        true
    }

    fn deliver(
        &mut self,
        from_inst: u64,
        from: SocketAddr,
        to: SocketAddr,
        payload: &[u8],
        sent: Duration,
    ) {
        let now = self.now;
        let target = self.by_addr.get(&to).copied();
        let answer = match target.and_then(|s| self.slots[s].running.as_mut().map(|r| (s, r))) {
            None => {
                let refused = PulsingError::NodeUnreachable {
                    addr: to.to_string(),
                    reason: "connection refused".into(),
                    delivery: Delivery::NotDelivered,
                };
                let at = now + self.latency();
                self.reply(at, from_inst, to, Err(refused));
                return;
            }
            Some((slot, r)) => {
                self.packets += 1;
                let result = r.node.handle_packet(now, payload);
                self.after(slot);
                result
            }
        };
        if self.lost(from, to) {
            let at = sent + self.config.gossip_timeout;
            self.time_out(at.max(now), from_inst, to);
        } else {
            let at = now + self.latency();
            self.reply(at, from_inst, to, answer);
        }
    }

    /// Schedules the answer `result` from `peer` to the sender `inst`.
    fn reply(
        &mut self,
        at: Duration,
        inst: u64,
        peer: SocketAddr,
        result: Result<Bytes, PulsingError>,
    ) {
        self.push(at, Ev::Reply { inst, peer, result });
    }

    /// Schedules the gossip timeout of a packet from `inst` to `peer` that was lost.
    fn time_out(&mut self, at: Duration, inst: u64, peer: SocketAddr) {
        let err = PulsingError::Timeout(self.config.gossip_timeout);
        self.reply(at, inst, peer, Err(err));
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.latency;
        if hi == lo {
            return lo;
        }
        let span = (hi - lo).as_nanos() as u64;
        lo + Duration::from_nanos(self.rng.random_range(0..=span))
    }

    fn lost(&mut self, a: SocketAddr, b: SocketAddr) -> bool {
        let ga = self.by_addr.get(&a).map(|s| self.slots[*s].group);
        let gb = self.by_addr.get(&b).map(|s| self.slots[*s].group);
        if ga != gb {
            return true;
        }
        self.loss > 0.0 && self.rng.random_bool(self.loss)
    }

    fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Collects what the node in `slot` wants to send and report, and schedules its wake-up.
    fn after(&mut self, slot: Slot) {
        let now = self.now;
        let addr = self.slots[slot].addr;
        let Some(r) = self.slots[slot].running.as_mut() else {
            return;
        };
        let inst = r.inst;
        let mut sends: Vec<Transmit> = Vec::new();
        while let Some(t) = r.node.poll_transmit() {
            sends.push(t);
        }
        let mut events = Vec::new();
        while let Some(e) = r.node.poll_event() {
            events.push(e);
        }
        let notes = std::mem::take(&mut r.node.debug_notes);
        let mut wake = None;
        if let Some(at) = r.node.poll_timeout() {
            if r.next_wake.is_none_or(|w| at < w) {
                r.next_wake = Some(at);
                wake = Some(at.max(now));
            }
        }
        if let Some(at) = wake {
            self.push(at, Ev::Wake { inst });
        }
        for n in notes {
            if n.starts_with("Rejoin") {
                self.rejoins += 1;
            }
            self.note(format!("{addr} foca {n}"));
        }
        for e in events {
            if let MembershipEvent::MemberDown(m) = &e {
                let alive = self.running().any(|(_, r)| r.node.id().node == m.id);
                if alive {
                    self.false_deaths += 1;
                }
            }
            self.note(format!("{addr} {e:?}"));
        }
        for t in sends {
            if self.lost(addr, t.to) {
                let at = now + self.config.gossip_timeout;
                self.time_out(at, inst, t.to);
            } else {
                let at = now + self.latency();
                self.push(
                    at,
                    Ev::Deliver {
                        from_inst: inst,
                        from: addr,
                        to: t.to,
                        payload: t.payload,
                        sent: now,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
