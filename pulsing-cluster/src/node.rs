//! [`Node`]: the membership and registry logic of one node, without IO.
//!
//! Every call takes the current time (`now`, a [`Duration`] since an epoch the caller picks and
//! keeps) and returns nothing but state: packets to send are taken with
//! [`poll_transmit`](Node::poll_transmit), membership changes with [`poll_event`](Node::poll_event),
//! and the next time [`handle_timeout`](Node::handle_timeout) must be called with
//! [`poll_timeout`](Node::poll_timeout). The tokio driver ([`Cluster`](crate::Cluster)) and the
//! simulation harness both drive this same type.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes};
use foca::{Codec, Foca, Member, Notification, OwnedNotification, Runtime, State, Timer};
use pulsing_core::{ActorLocation, ActorName, MemberState, MembershipEvent, NodeId, PulsingError};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::config::ClusterConfig;
use crate::identity::Id;
use crate::registry::{Entry, Registry, SharedRegistry};
use crate::wire::{self, FocaCodec, Reader, WireError, MIN_ID_LEN};

/// A packet to send: `payload` goes to the node at `to` as one `Transport::gossip` call, and the
/// answer (or the failure) comes back through [`Node::handle_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transmit {
    pub(crate) to: SocketAddr,
    pub(crate) payload: Bytes,
}

/// Where the join stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinState {
    /// Waiting for a seed's first sync.
    Joining,
    /// Synced with a seed, or started without seeds.
    Joined,
    /// No seed answered before the join timeout.
    Failed,
}

/// What foca asked for during one call: foca's [`Runtime`] as an accumulating buffer.
#[derive(Default)]
struct Effects {
    sends: Vec<(Id, Bytes)>,
    timers: Vec<(Duration, Timer<Id>)>,
    notes: Vec<OwnedNotification<Id>>,
}

impl Runtime<Id> for Effects {
    fn notify(&mut self, notification: Notification<'_, Id>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: Id, data: &[u8]) {
        self.sends.push((to, Bytes::copy_from_slice(data)));
    }

    fn submit_after(&mut self, event: Timer<Id>, after: Duration) {
        self.timers.push((after, event));
    }
}

#[derive(Debug)]
enum Wake {
    Foca(Timer<Id>),
    AntiEntropy,
    JoinRetry,
}

type Swim = Foca<Id, FocaCodec, SmallRng, SharedRegistry>;

/// One node's SWIM state (foca) and registry.
pub(crate) struct Node {
    config: ClusterConfig,
    foca: Swim,
    registry: SharedRegistry,
    fx: Effects,
    timers: BTreeMap<(Duration, u64), Wake>,
    seq: u64,
    outbox: VecDeque<Transmit>,
    events: VecDeque<MembershipEvent>,
    live: BTreeMap<NodeId, Id>,
    suspects: BTreeSet<NodeId>,
    maybe_pull: BTreeSet<NodeId>,
    seeds: Vec<SocketAddr>,
    join: JoinState,
    join_deadline: Duration,
    join_errors: BTreeMap<SocketAddr, PulsingError>,
    left: bool,
    /// Set as [`leave`](Self::leave) starts: foca's `Defunct` is then our own leave, not a death.
    leaving: bool,
    rng: SmallRng,
    /// Suspicion timeout and transmissions foca is configured with.
    sizing: (Duration, u8),
    /// foca's notifications other than up/down, for the simulation's trace.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) debug_notes: Vec<String>,
}

impl Node {
    /// A node with identity `me` that is alone until it joins or is joined. `seed` seeds its RNG.
    pub(crate) fn new(me: Id, config: ClusterConfig, seed: u64, now: Duration) -> Node {
        let registry = SharedRegistry(Arc::new(Mutex::new(Registry::new(me))));
        let foca = Foca::with_custom_broadcast(
            me,
            config.foca(1),
            SmallRng::seed_from_u64(seed),
            FocaCodec,
            registry.clone(),
        );
        let mut node = Node {
            sizing: (config.suspicion_for(1), config.transmissions_for(1)),
            foca,
            registry,
            fx: Effects::default(),
            timers: BTreeMap::new(),
            seq: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            live: BTreeMap::new(),
            suspects: BTreeSet::new(),
            maybe_pull: BTreeSet::new(),
            seeds: Vec::new(),
            join: JoinState::Joined,
            join_deadline: now,
            join_errors: BTreeMap::new(),
            left: false,
            leaving: false,
            rng: SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            config,
            #[cfg(any(test, feature = "sim"))]
            debug_notes: Vec::new(),
        };
        let first = node.config.anti_entropy_interval;
        node.schedule(now + first, Wake::AntiEntropy);
        node
    }

    /// This node's current identity.
    pub(crate) fn id(&self) -> Id {
        *self.foca.identity()
    }

    /// Starts joining through `seeds` (never our own address): asks each for a push-pull sync of
    /// members and registry, again every `join_retry`, until one answers or `join_timeout`
    /// passes. Without seeds the node is the first member and counts as joined at once.
    pub(crate) fn join(&mut self, now: Duration, seeds: Vec<SocketAddr>) {
        let me = self.id().addr;
        self.seeds = seeds.into_iter().filter(|s| *s != me).collect();
        self.seeds.sort();
        self.seeds.dedup();
        if self.seeds.is_empty() {
            self.join = JoinState::Joined;
            return;
        }
        self.join = JoinState::Joining;
        self.join_deadline = now + self.config.join_timeout;
        self.ask_seeds();
        let retry = self.config.join_retry;
        self.schedule(now + retry, Wake::JoinRetry);
    }

    pub(crate) fn join_state(&self) -> JoinState {
        self.join
    }

    /// The last failure seen per seed while joining.
    pub(crate) fn join_errors(&self) -> &BTreeMap<SocketAddr, PulsingError> {
        &self.join_errors
    }

    pub(crate) fn seeds(&self) -> &[SocketAddr] {
        &self.seeds
    }

    fn ask_seeds(&mut self) {
        let request = self.sync_request(true);
        for seed in self.seeds.clone() {
            self.outbox.push_back(Transmit {
                to: seed,
                payload: request.clone(),
            });
        }
    }

    /// Handles a packet that arrived as a request and returns the answer to send back in the same
    /// exchange: SWIM replies to the sender (acks) and sync answers travel this way.
    ///
    /// # Errors
    ///
    /// [`PulsingError::BadMessage`] for a packet that does not decode (nothing was applied from
    /// the bad part); [`PulsingError::SystemShutdown`] after [`leave`](Self::leave).
    pub(crate) fn handle_packet(
        &mut self,
        now: Duration,
        packet: &[u8],
    ) -> Result<Bytes, PulsingError> {
        self.handle(now, packet, true)
    }

    /// Handles the answer to a [`Transmit`] sent to `to`, or its failure.
    pub(crate) fn handle_reply(
        &mut self,
        now: Duration,
        to: SocketAddr,
        reply: Result<Bytes, PulsingError>,
    ) {
        if reply.is_ok() {
            // It answers now: an earlier refusal from it is no reason to give up the join.
            self.join_errors.remove(&to);
        }
        match reply {
            Ok(body) if body.is_empty() => {}
            Ok(body) => {
                if let Err(e) = self.handle(now, &body, false) {
                    tracing::debug!(peer = %to, error = %e, "bad answer to a cluster packet");
                }
            }
            Err(e) => {
                if self.join == JoinState::Joining && self.seeds.contains(&to) {
                    self.join_errors.insert(to, e.clone());
                    // Every seed refused this node's identity (another cluster secret, or none):
                    // retrying will not change that, so the join fails now.
                    if self.seeds.iter().all(|s| {
                        matches!(self.join_errors.get(s), Some(PulsingError::Unauthorized(_)))
                    }) {
                        self.join = JoinState::Failed;
                    }
                }
                tracing::trace!(peer = %to, error = %e, "cluster packet not delivered");
            }
        }
    }

    fn handle(
        &mut self,
        now: Duration,
        packet: &[u8],
        inline: bool,
    ) -> Result<Bytes, PulsingError> {
        if self.left {
            return Err(PulsingError::SystemShutdown);
        }
        let (kind, mut r) = wire::open(packet)?;
        let answer = match kind {
            wire::KIND_FOCA => self.on_foca(now, r, inline),
            wire::KIND_SYNC => self.on_sync(now, r),
            wire::KIND_SYNCED => self.on_synced(now, r).map(|()| Bytes::new()),
            wire::KIND_ENTRIES => {
                let _from = r.id()?;
                let entries = read_entries(&mut r)?;
                r.finish()?;
                self.apply_entries(entries);
                Ok(Bytes::new())
            }
            other => Err(WireError(format!("unknown packet kind {other}")).into()),
        };
        self.settle(now);
        answer
    }

    fn on_foca(
        &mut self,
        now: Duration,
        r: Reader<'_>,
        inline: bool,
    ) -> Result<Bytes, PulsingError> {
        let packets = wire::read_foca_batch(r)?;
        let mut replies: Vec<Bytes> = Vec::new();
        for p in packets {
            let src = FocaCodec.decode_header(&mut &p[..])?.src;
            let result = self.foca.handle_data(p, &mut self.fx);
            if inline {
                let (back, rest): (Vec<_>, Vec<_>) =
                    self.fx.sends.drain(..).partition(|(to, _)| *to == src);
                self.fx.sends = rest;
                replies.extend(back.into_iter().map(|(_, b)| b));
            }
            self.process_effects(now);
            if let Err(e) = result {
                match e {
                    foca::Error::Decode(_)
                    | foca::Error::MalformedPacket
                    | foca::Error::DataTooBig
                    | foca::Error::CustomBroadcast(_)
                    | foca::Error::DataFromOurselves => {
                        return Err(PulsingError::BadMessage(format!("cluster packet: {e}")));
                    }
                    other => tracing::trace!(error = %other, "swim packet ignored"),
                }
            }
        }
        if replies.is_empty() {
            Ok(Bytes::new())
        } else {
            Ok(wire::foca_batch(replies.iter().map(|b| &b[..])).into())
        }
    }

    fn on_sync(&mut self, now: Duration, mut r: Reader<'_>) -> Result<Bytes, PulsingError> {
        let from = r.id()?;
        let flags = r.u8()?;
        let n = r.count(16)?;
        let mut digest = BTreeMap::new();
        for _ in 0..n {
            digest.insert(NodeId(r.u64()?), r.u64()?);
        }
        r.finish()?;
        let me = self.id();
        if from.node == me.node || from.addr == me.addr {
            return Err(PulsingError::BadMessage(
                "cluster packet: sync request from our own address or boot id".into(),
            ));
        }
        let want_members = flags & 1 != 0;
        if want_members {
            let _ = self
                .foca
                .apply_many(std::iter::once(Member::alive(from)), true, &mut self.fx);
            self.process_effects(now);
        }
        let mut out = vec![wire::VERSION, wire::KIND_SYNCED];
        wire::put_id(&mut out, &me);
        out.put_u8(flags & 1);
        if want_members {
            let members: Vec<Member<Id>> = self
                .foca
                .iter_membership_state()
                .cloned()
                .chain(std::iter::once(Member::alive(me)))
                .collect();
            out.put_u32(members.len() as u32);
            for m in &members {
                wire::put_member(&mut out, m);
            }
        }
        let reg = self.registry.lock();
        let newer: Vec<&Entry> = reg
            .entries()
            .filter(|e| e.owner.node == me.node || self.live.contains_key(&e.owner.node))
            .filter(|e| digest.get(&e.owner.node).is_none_or(|v| *v < e.version))
            .collect();
        out.put_u32(newer.len() as u32);
        for e in newer {
            e.encode(&mut out);
        }
        let want: Vec<NodeId> = digest
            .iter()
            .filter(|(node, v)| {
                **node != me.node && reg.get(**node).is_none_or(|e| e.version < **v)
            })
            .map(|(node, _)| *node)
            .collect();
        drop(reg);
        out.put_u32(want.len() as u32);
        for node in want {
            out.put_u64(node.0);
        }
        Ok(out.into())
    }

    fn on_synced(&mut self, now: Duration, mut r: Reader<'_>) -> Result<(), PulsingError> {
        let from = r.id()?;
        let flags = r.u8()?;
        let mut members = Vec::new();
        if flags & 1 != 0 {
            let n = r.count(MIN_ID_LEN + 3)?;
            for _ in 0..n {
                members.push(r.member()?);
            }
        }
        let entries = read_entries(&mut r)?;
        let n = r.count(8)?;
        let mut want = Vec::with_capacity(n);
        for _ in 0..n {
            want.push(NodeId(r.u64()?));
        }
        r.finish()?;
        // Entries first: owners that come up with the members below then already have them.
        self.apply_entries(entries);
        if flags & 1 != 0 {
            let _ = self
                .foca
                .apply_many(members.into_iter(), true, &mut self.fx);
            self.process_effects(now);
            if self.join == JoinState::Joining {
                self.join = JoinState::Joined;
            }
        }
        if !want.is_empty() {
            let me = self.id();
            let mut out = vec![wire::VERSION, wire::KIND_ENTRIES];
            wire::put_id(&mut out, &me);
            let reg = self.registry.lock();
            let entries: Vec<&Entry> = want.iter().filter_map(|n| reg.get(*n)).collect();
            out.put_u32(entries.len() as u32);
            for e in entries {
                e.encode(&mut out);
            }
            drop(reg);
            self.outbox.push_back(Transmit {
                to: from.addr,
                payload: out.into(),
            });
        }
        Ok(())
    }

    /// Stores entries learnt by sync and re-disseminates the newer ones.
    fn apply_entries(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            let newer = self.registry.lock().apply(entry.clone());
            if newer {
                let _ = self.foca.add_broadcast(&entry.broadcast_item());
            }
        }
    }

    fn sync_request(&self, want_members: bool) -> Bytes {
        let me = self.id();
        let mut out = vec![wire::VERSION, wire::KIND_SYNC];
        wire::put_id(&mut out, &me);
        out.put_u8(u8::from(want_members));
        let reg = self.registry.lock();
        let digest: Vec<(u64, u64)> = reg
            .entries()
            .filter(|e| e.owner.node == me.node || self.live.contains_key(&e.owner.node))
            .map(|e| (e.owner.node.0, e.version))
            .collect();
        drop(reg);
        out.put_u32(digest.len() as u32);
        for (node, version) in digest {
            out.put_u64(node);
            out.put_u64(version);
        }
        out.into()
    }

    /// Runs every timer due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Duration) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let wake = entry.remove();
            if self.left {
                continue;
            }
            match wake {
                Wake::Foca(timer) => {
                    if let Err(e) = self.foca.handle_timer(timer, &mut self.fx) {
                        tracing::trace!(error = %e, "swim timer");
                    }
                    self.process_effects(now);
                }
                Wake::AntiEntropy => {
                    self.anti_entropy();
                    let next = now + self.config.anti_entropy_interval;
                    self.schedule(next, Wake::AntiEntropy);
                }
                Wake::JoinRetry => {
                    if self.join == JoinState::Joining {
                        if now >= self.join_deadline {
                            self.join = JoinState::Failed;
                        } else {
                            self.ask_seeds();
                            let next = now + self.config.join_retry;
                            self.schedule(next, Wake::JoinRetry);
                        }
                    }
                }
            }
        }
        self.settle(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub(crate) fn poll_timeout(&self) -> Option<Duration> {
        self.timers.keys().next().map(|k| k.0)
    }

    /// The next packet to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next membership change seen here.
    pub(crate) fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }

    /// Publishes `name` as one of this node's public actors.
    pub(crate) fn register(&mut self, now: Duration, name: &ActorName) {
        let me = self.id();
        let entry = self
            .registry
            .lock()
            .update_own(me, |names| names.insert(name.clone()));
        self.publish(now, entry);
    }

    /// Withdraws `name`.
    pub(crate) fn unregister(&mut self, now: Duration, name: &ActorName) {
        let me = self.id();
        let entry = self
            .registry
            .lock()
            .update_own(me, |names| names.remove(name));
        self.publish(now, entry);
    }

    /// Publishes `name` without disseminating it: a registry update whose broadcast was lost.
    /// Only anti-entropy can spread it.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn register_quietly(&mut self, name: &ActorName) {
        let me = self.id();
        let _ = self
            .registry
            .lock()
            .update_own(me, |names| names.insert(name.clone()));
    }

    fn publish(&mut self, now: Duration, entry: Option<Entry>) {
        let Some(entry) = entry else { return };
        if self.left {
            return;
        }
        let _ = self.foca.add_broadcast(&entry.broadcast_item());
        let _ = self.foca.broadcast(&mut self.fx);
        self.process_effects(now);
        // foca hands a broadcast to one random member and lets gossip do the rest (~one gossip
        // interval per hop). A node joining through a seed in that window would not see the change,
        // so also offer our digest to every live member now: each pulls the newer list at once.
        let request = self.sync_request(false);
        let me = self.id().node;
        let targets: Vec<SocketAddr> = self
            .live
            .iter()
            .filter(|(node, _)| **node != me)
            .map(|(_, id)| id.addr)
            .collect();
        for to in targets {
            self.outbox.push_back(Transmit {
                to,
                payload: request.clone(),
            });
        }
        self.settle(now);
    }

    /// Announces that this node leaves: its own `Down` goes to `indirect_probes` members, three
    /// times over, and the node stops taking part.
    pub(crate) fn leave(&mut self, now: Duration) {
        if self.left {
            return;
        }
        self.leaving = true;
        let _ = self.foca.leave_cluster(&mut self.fx);
        for _ in 0..2 {
            let _ = self.foca.gossip(&mut self.fx);
        }
        self.process_effects(now);
        self.settle(now);
        self.left = true;
        self.timers.clear();
    }

    /// Where instances of `name` live on other live nodes, by boot id.
    pub(crate) fn lookup(&self, name: &str) -> Vec<ActorLocation> {
        self.registry
            .lock()
            .holders(name)
            .filter_map(|node| self.live.get(&node))
            .map(|id| ActorLocation {
                node: id.node,
                addr: id.addr,
            })
            .collect()
    }

    /// Boot ids of the other nodes whose actors `lookup` may return.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn lookup_all_nodes(&self) -> BTreeSet<NodeId> {
        let reg = self.registry.lock();
        reg.entries()
            .map(|e| e.owner.node)
            .filter(|n| self.live.contains_key(n))
            .collect()
    }

    /// Every member known here, this node first.
    pub(crate) fn members(&self) -> Vec<pulsing_core::Member> {
        let me = self.id();
        let own = pulsing_core::Member {
            id: me.node,
            addr: me.addr,
            state: if self.left {
                MemberState::Left
            } else {
                MemberState::Alive
            },
        };
        let mut others: Vec<_> = self
            .foca
            .iter_membership_state()
            .map(|m| pulsing_core::Member {
                id: m.id().node,
                addr: m.id().addr,
                state: match m.state() {
                    State::Alive => MemberState::Alive,
                    State::Suspect => MemberState::Suspect,
                    State::Down => MemberState::Down,
                },
            })
            .collect();
        others.sort_by_key(|m| (m.addr, m.id));
        std::iter::once(own).chain(others).collect()
    }

    /// Boot ids of the members that are alive or suspect, this node excluded.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn live(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.live.keys().copied()
    }

    /// The registry version this node holds for `node`.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn version_of(&self, node: NodeId) -> Option<u64> {
        self.registry.lock().get(node).map(|e| e.version)
    }

    fn schedule(&mut self, at: Duration, wake: Wake) {
        self.seq += 1;
        self.timers.insert((at, self.seq), wake);
    }

    /// Moves what foca asked for into timers, the outbox and the live set.
    fn process_effects(&mut self, now: Duration) {
        for (after, timer) in std::mem::take(&mut self.fx.timers) {
            self.schedule(now + after, Wake::Foca(timer));
        }
        let sends = std::mem::take(&mut self.fx.sends);
        let sends: Vec<(Id, Bytes)> = sends
            .into_iter()
            .filter(|(to, data)| !self.is_spurious_turn_undead(to, data))
            .collect();
        let mut batches: Vec<(SocketAddr, Vec<Bytes>)> = Vec::new();
        for (to, data) in sends {
            match batches.iter_mut().find(|(a, _)| *a == to.addr) {
                Some((_, list)) => list.push(data),
                None => batches.push((to.addr, vec![data])),
            }
        }
        for (to, list) in batches {
            self.outbox.push_back(Transmit {
                to,
                payload: wire::foca_batch(list.iter().map(|b| &b[..])).into(),
            });
        }
        let notes = std::mem::take(&mut self.fx.notes);
        if notes.is_empty() {
            return;
        }
        for note in &notes {
            #[cfg(any(test, feature = "sim"))]
            if !matches!(
                note,
                OwnedNotification::MemberUp(_) | OwnedNotification::MemberDown(_)
            ) {
                self.debug_notes.push(format!("{note:?}"));
            }
            match note {
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(gen = id.gen, "declared down by the cluster; rejoined");
                    let me = *id;
                    let entry = self.registry.lock().update_own(me, |_| true);
                    if let Some(entry) = entry {
                        let _ = self.foca.add_broadcast(&entry.broadcast_item());
                    }
                }
                // Our own leave ends in `Defunct` too: that one is expected.
                OwnedNotification::Defunct if self.leaving => {
                    tracing::debug!("left the cluster");
                }
                OwnedNotification::Defunct => {
                    tracing::warn!("this node was declared down and cannot rejoin");
                }
                _ => {}
            }
        }
        self.refresh_live();
    }

    /// foca 2.0.0 sends `TurnUndead` when a suspicion timer fires even if the member refuted the
    /// suspicion in the meantime (`handle_timer`, `ChangeSuspectToDown`: the message is sent
    /// whether or not the incarnation check passed). The member would then take itself for dead
    /// and rejoin under a renewed identity: churn for nothing. A `TurnUndead` to a member that is
    /// active in our view is such a stale one, and is dropped here.
    fn is_spurious_turn_undead(&self, to: &Id, data: &[u8]) -> bool {
        // TurnUndead carries no piggyback: only header-sized packets can be one.
        if data.len() > 2 * 40 + 8 {
            return false;
        }
        let Ok(header) = FocaCodec.decode_header(&mut &data[..]) else {
            return false;
        };
        header.message == foca::Message::TurnUndead
            && self.foca.iter_members().any(|m| m.id() == to)
    }

    /// Recomputes the live set from foca and reports what changed.
    fn refresh_live(&mut self) {
        let now_live: BTreeMap<NodeId, Id> = self
            .foca
            .iter_members()
            .map(|m| (m.id().node, *m.id()))
            .collect();
        let mut reg = self.registry.lock();
        for (node, id) in &self.live {
            if !now_live.contains_key(node) {
                reg.remove(*node);
                self.suspects.remove(node);
                self.maybe_pull.remove(node);
                self.events
                    .push_back(MembershipEvent::MemberDown(member(id, MemberState::Down)));
            }
        }
        for (node, id) in &now_live {
            if !self.live.contains_key(node) {
                if reg.get(*node).is_none() {
                    self.maybe_pull.insert(*node);
                }
                self.events
                    .push_back(MembershipEvent::MemberUp(member(id, MemberState::Alive)));
            }
        }
        drop(reg);
        self.live = now_live;
        let n = self.live.len() + 1;
        let sizing = (
            self.config.suspicion_for(n),
            self.config.transmissions_for(n),
        );
        if sizing != self.sizing {
            self.sizing = sizing;
            let _ = self.foca.set_config(self.config.foca(self.live.len() + 1));
        }
    }

    /// Periodic work: suspect events, registry garbage, one push-pull with a random member.
    fn anti_entropy(&mut self) {
        let suspects: BTreeSet<NodeId> = self
            .foca
            .iter_members()
            .filter(|m| m.state() == State::Suspect)
            .map(|m| m.id().node)
            .collect();
        for node in suspects.difference(&self.suspects) {
            if let Some(id) = self.live.get(node) {
                self.events.push_back(MembershipEvent::MemberSuspect(member(
                    id,
                    MemberState::Suspect,
                )));
            }
        }
        self.suspects = suspects;
        let live = &self.live;
        self.registry.lock().retain(|n| live.contains_key(&n));
        if self.live.is_empty() {
            if self.join != JoinState::Joining && !self.seeds.is_empty() {
                self.ask_seeds();
            }
            return;
        }
        let pick = self.rng.random_range(0..self.live.len());
        if let Some(id) = self.live.values().nth(pick).copied() {
            let payload = self.sync_request(false);
            self.outbox.push_back(Transmit {
                to: id.addr,
                payload,
            });
        }
    }

    /// End of every call: pulls registry lists we know exist but do not have.
    fn settle(&mut self, _now: Duration) {
        let mut targets: BTreeSet<SocketAddr> = BTreeSet::new();
        let noticed = self.registry.lock().take_noticed();
        targets.extend(noticed.iter().map(|id| id.addr));
        let candidates = std::mem::take(&mut self.maybe_pull);
        {
            let reg = self.registry.lock();
            for node in candidates {
                if reg.get(node).is_none() {
                    if let Some(id) = self.live.get(&node) {
                        targets.insert(id.addr);
                    }
                }
            }
        }
        if targets.is_empty() || self.left {
            return;
        }
        let request = self.sync_request(false);
        for to in targets {
            self.outbox.push_back(Transmit {
                to,
                payload: request.clone(),
            });
        }
    }
}

fn member(id: &Id, state: MemberState) -> pulsing_core::Member {
    pulsing_core::Member {
        id: id.node,
        addr: id.addr,
        state,
    }
}

fn read_entries(r: &mut Reader<'_>) -> Result<Vec<Entry>, WireError> {
    let n = r.count(MIN_ID_LEN + 9)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Entry::decode(r)?);
    }
    Ok(out)
}
