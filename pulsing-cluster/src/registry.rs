//! The registry of public actors: per node, a versioned list of names, spread as foca custom
//! broadcasts and repaired by anti-entropy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BufMut;
use pulsing_core::{ActorName, NodeId};

use crate::identity::Id;
use crate::wire::{self, Reader, WireError};

/// Broadcast items with more names than fit in this many bytes travel as a version notice only;
/// receivers then pull the list from the owner.
pub(crate) const INLINE_LIMIT: usize = 8 * 1024;

/// One node's public actors at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) owner: Id,
    pub(crate) version: u64,
    /// `None` in a notice ("version N exists, ask the owner").
    pub(crate) names: Option<BTreeSet<ActorName>>,
}

impl Entry {
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        wire::put_id(buf, &self.owner);
        buf.put_u64(self.version);
        match &self.names {
            None => buf.put_u8(0),
            Some(names) => {
                buf.put_u8(1);
                buf.put_u32(names.len() as u32);
                for n in names {
                    buf.put_u8(n.as_str().len() as u8);
                    buf.put_slice(n.as_str().as_bytes());
                }
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Entry, WireError> {
        let owner = r.id()?;
        let version = r.u64()?;
        let names = match r.u8()? {
            0 => None,
            1 => {
                let n = r.count(2)?;
                let mut names = BTreeSet::new();
                for _ in 0..n {
                    names.insert(r.name()?);
                }
                Some(names)
            }
            other => return Err(WireError(format!("entry flag {other}"))),
        };
        Ok(Entry {
            owner,
            version,
            names,
        })
    }

    /// The bytes foca disseminates for this entry: the full list if it is small, else a notice.
    pub(crate) fn broadcast_item(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        if buf.len() > INLINE_LIMIT {
            buf.clear();
            Entry {
                names: None,
                ..self.clone()
            }
            .encode(&mut buf);
        }
        buf
    }
}

/// What the registry knows. Shared between the node and its foca broadcast handler (foca owns the
/// handler and gives no access to it), always locked by the one thread driving the node.
#[derive(Debug)]
pub(crate) struct Registry {
    me: NodeId,
    entries: BTreeMap<NodeId, Entry>,
    /// Newer versions announced by notices, not pulled yet.
    noticed: BTreeMap<NodeId, (Id, u64)>,
    by_name: HashMap<ActorName, BTreeSet<NodeId>>,
    /// Set when an entry changed; the node uses it to know when to look again.
    pub(crate) changed: bool,
}

impl Registry {
    pub(crate) fn new(me: Id) -> Registry {
        let mut reg = Registry {
            me: me.node,
            entries: BTreeMap::new(),
            noticed: BTreeMap::new(),
            by_name: HashMap::new(),
            changed: false,
        };
        reg.put(Entry {
            owner: me,
            version: 1,
            names: Some(BTreeSet::new()),
        });
        reg
    }

    pub(crate) fn own(&self) -> &Entry {
        &self.entries[&self.me]
    }

    pub(crate) fn get(&self, node: NodeId) -> Option<&Entry> {
        self.entries.get(&node)
    }

    /// Changes this node's own list (bumping its version) and returns the new entry, or `None` if
    /// nothing changed.
    pub(crate) fn update_own(
        &mut self,
        owner: Id,
        change: impl FnOnce(&mut BTreeSet<ActorName>) -> bool,
    ) -> Option<Entry> {
        let mut entry = self.own().clone();
        let names = entry.names.get_or_insert_with(BTreeSet::new);
        if !change(names) {
            return None;
        }
        entry.version += 1;
        entry.owner = owner;
        self.put(entry.clone());
        Some(entry)
    }

    /// Stores `entry` if it is newer than what we have; says whether it was.
    pub(crate) fn apply(&mut self, entry: Entry) -> bool {
        let node = entry.owner.node;
        if node == self.me {
            return false;
        }
        let known = self.entries.get(&node).map_or(0, |e| e.version);
        if entry.version <= known {
            return false;
        }
        if entry.names.is_none() {
            let noticed = self.noticed.get(&node).map_or(0, |n| n.1);
            if entry.version <= noticed {
                return false;
            }
            self.noticed.insert(node, (entry.owner, entry.version));
            return true;
        }
        self.noticed.remove(&node);
        self.put(entry);
        true
    }

    fn put(&mut self, entry: Entry) {
        let node = entry.owner.node;
        self.take(node);
        for n in entry.names.iter().flatten() {
            self.by_name.entry(n.clone()).or_default().insert(node);
        }
        self.entries.insert(node, entry);
        self.changed = true;
    }

    /// Forgets `node`'s entry (declared down, left, or replaced).
    pub(crate) fn remove(&mut self, node: NodeId) {
        if node == self.me {
            return;
        }
        self.noticed.remove(&node);
        if self.take(node).is_some() {
            self.changed = true;
        }
    }

    /// Removes `node`'s entry and its names from the name index; returns the entry.
    fn take(&mut self, node: NodeId) -> Option<Entry> {
        let old = self.entries.remove(&node)?;
        for n in old.names.iter().flatten() {
            if let Some(set) = self.by_name.get_mut(n) {
                set.remove(&node);
                if set.is_empty() {
                    self.by_name.remove(n);
                }
            }
        }
        Some(old)
    }

    /// Keeps only the entries whose owner satisfies `keep` (and our own).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(NodeId) -> bool) {
        let gone: Vec<NodeId> = self
            .entries
            .keys()
            .copied()
            .filter(|n| *n != self.me && !keep(*n))
            .collect();
        for n in gone {
            self.remove(n);
        }
        self.noticed.retain(|n, _| keep(*n));
    }

    /// Nodes that have an instance of `name`.
    pub(crate) fn holders(&self, name: &str) -> impl Iterator<Item = NodeId> + '_ {
        self.by_name.get(name).into_iter().flatten().copied()
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Takes the notices whose lists we should pull from their owners.
    pub(crate) fn take_noticed(&mut self) -> Vec<Id> {
        std::mem::take(&mut self.noticed)
            .into_values()
            .map(|(id, _)| id)
            .collect()
    }
}

/// A shared handle on the registry.
#[derive(Debug, Clone)]
pub(crate) struct SharedRegistry(pub(crate) Arc<Mutex<Registry>>);

impl SharedRegistry {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The key foca keeps per disseminated registry item: a newer version of the same owner replaces
/// an older one still in the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ItemKey {
    node: NodeId,
    version: u64,
}

impl foca::Invalidates for ItemKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node == other.node && self.version >= other.version
    }
}

impl foca::BroadcastHandler<Id> for SharedRegistry {
    type Key = ItemKey;
    type Error = WireError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Id>,
    ) -> Result<Option<ItemKey>, WireError> {
        let mut r = Reader::new(data);
        let entry = Entry::decode(&mut r)?;
        r.finish()?;
        let key = ItemKey {
            node: entry.owner.node,
            version: entry.version,
        };
        let mut reg = self.lock();
        if entry.owner.node == reg.me {
            // Our own item: disseminate what we add ourselves, never what others echo back.
            return Ok(sender.is_none().then_some(key));
        }
        Ok(reg.apply(entry).then_some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::BroadcastHandler;

    fn id(n: u64) -> Id {
        Id {
            addr: format!("127.0.0.1:{}", 7000 + n).parse().unwrap(),
            node: NodeId(n),
            boot: 1,
            gen: 0,
        }
    }

    fn names(list: &[&str]) -> Option<BTreeSet<ActorName>> {
        Some(list.iter().map(|n| ActorName::new(n).unwrap()).collect())
    }

    #[test]
    fn only_newer_versions_are_applied_and_redisseminated() {
        let mut h = SharedRegistry(Arc::new(Mutex::new(Registry::new(id(1)))));
        let mut item = |version, list: &[&str]| {
            let mut buf = Vec::new();
            Entry {
                owner: id(2),
                version,
                names: names(list),
            }
            .encode(&mut buf);
            h.receive_item(&buf, Some(&id(3))).unwrap()
        };
        assert!(item(2, &["a"]).is_some());
        assert!(item(2, &["a"]).is_none());
        assert!(item(1, &[]).is_none());
        assert!(item(3, &["b"]).is_some());
        let reg = h.lock();
        assert_eq!(reg.holders("b").collect::<Vec<_>>(), vec![NodeId(2)]);
        assert_eq!(reg.holders("a").count(), 0);
    }

    #[test]
    fn a_notice_asks_for_a_pull_once() {
        let mut h = SharedRegistry(Arc::new(Mutex::new(Registry::new(id(1)))));
        let mut buf = Vec::new();
        Entry {
            owner: id(2),
            version: 5,
            names: None,
        }
        .encode(&mut buf);
        assert!(h.receive_item(&buf, Some(&id(3))).unwrap().is_some());
        assert!(h.receive_item(&buf, Some(&id(3))).unwrap().is_none());
        assert_eq!(h.lock().take_noticed(), vec![id(2)]);
    }

    #[test]
    fn garbage_items_are_errors_not_panics() {
        let mut h = SharedRegistry(Arc::new(Mutex::new(Registry::new(id(1)))));
        for data in [&[][..], &[4, 127], &[9; 40]] {
            assert!(h.receive_item(data, None).is_err());
        }
    }
}
