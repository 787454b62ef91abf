//! Streaming replication, synchronous commit and the client writer.
//!
//! Every tick each running replica receives what its upstream has, if its history is a prefix of the
//! upstream's and the link between them is up; it counts as streaming while it heard from its upstream
//! within the upstream timeout (the lease ttl, as the agent configures it), so a cut link is noticed
//! late, a stopped upstream at once. A commit is acknowledged to the client as PostgreSQL would: at once
//! without a synchronous rule, else once the standbys the rule waits for have flushed it.

use crate::database::Process;
use crate::world::{member, Endpoint, World};
use vigil_agent::db::{DbState, ReplicaLink, SyncRule};
use vigil_policy::SynchronousMode;

impl World {
    /// What `node`'s database adapter reports now, with its replica links when it is a primary.
    pub fn observe(&self, node: usize) -> DbState {
        let timeout = self.settings.ttl.as_millis() as u64;
        let mut state = self.nodes[node].db.observe(self.now(), timeout);
        if self.nodes[node].db.is_primary() {
            let sync = self.synchronous(node);
            state.replicas = self
                .standbys(node)
                .into_iter()
                .map(|r| ReplicaLink {
                    name: member(r).to_string(),
                    streaming: true,
                    synchronous: sync.contains(&r),
                    flushed: self.nodes[r].db.data.as_ref().map(|d| d.position()),
                    shown: Default::default(),
                })
                .collect();
        }
        state
    }

    /// The replicas streaming from `node` now.
    fn standbys(&self, node: usize) -> Vec<usize> {
        let name = member(node);
        let timeout = self.settings.ttl.as_millis() as u64;
        (0..self.nodes.len())
            .filter(|&r| {
                let db = &self.nodes[r].db;
                db.upstream() == Some(name.as_str())
                    && db.connected
                    && db.last_heard.is_some_and(|at| self.now().saturating_sub(at) < timeout)
            })
            .collect()
    }

    /// The standbys `node`'s commits wait for under its rule (PostgreSQL `synchronous_standby_names`).
    fn synchronous(&self, node: usize) -> Vec<usize> {
        let standbys = self.standbys(node);
        let named = |names: &[String]| -> Vec<usize> {
            names.iter().filter_map(|n| standbys.iter().copied().find(|&r| member(r).as_str() == n)).collect()
        };
        match &self.nodes[node].db.sync_rule {
            None | Some(SyncRule::Off) => Vec::new(),
            Some(SyncRule::AnyReplica) => standbys.first().copied().into_iter().collect(),
            Some(SyncRule::First { count, names }) => {
                named(names).into_iter().take(*count as usize).collect()
            }
            Some(SyncRule::Any { names, .. }) => named(names),
        }
    }

    /// Every running replica receives what its upstream has.
    pub fn replicate(&mut self) {
        let now = self.now();
        for r in 0..self.nodes.len() {
            let Process::Replica { upstream: Some(upstream) } = &self.nodes[r].db.process else { continue };
            let Some(u) = (0..self.nodes.len()).find(|&u| member(u).as_str() == upstream) else { continue };
            let Some(theirs) = self.nodes[u].data_if_running().cloned() else {
                self.nodes[r].db.connected = false; // connection refused or closed
                continue;
            };
            if self.cut(Endpoint::Node(r), Endpoint::Node(u)) {
                continue; // the connection stays open, silent
            }
            let db = &mut self.nodes[r].db;
            let Some(mine) = db.data.as_mut() else { continue };
            if mine.is_prefix_of(&theirs) {
                let have = mine.log.len();
                mine.log.extend_from_slice(&theirs.log[have..]);
                mine.timeline = theirs.timeline;
                db.connected = true;
                db.last_heard = Some(now);
            } else {
                db.connected = false;
            }
        }
    }

    /// Acknowledges the commits whose standbys have them.
    pub fn acknowledge(&mut self) {
        for p in 0..self.nodes.len() {
            if self.nodes[p].pending.is_empty() || !self.nodes[p].db.is_primary() {
                continue;
            }
            let sync = self.synchronous(p);
            let has = |r: &usize, index: usize| {
                self.nodes[*r].db.data.as_ref().is_some_and(|d| d.log.len() > index)
            };
            let acknowledged = |index: usize| match &self.nodes[p].db.sync_rule {
                None | Some(SyncRule::Off) => true,
                Some(SyncRule::AnyReplica) => sync.len() == 1 && sync.iter().all(|r| has(r, index)),
                Some(SyncRule::First { count, .. }) => {
                    sync.len() >= *count as usize && sync.iter().all(|r| has(r, index))
                }
                Some(SyncRule::Any { count, .. }) => {
                    sync.iter().filter(|r| has(r, index)).count() >= *count as usize
                }
            };
            let (done, waiting): (Vec<_>, Vec<_>) =
                self.nodes[p].pending.iter().partition(|(index, _)| acknowledged(*index));
            self.nodes[p].pending = waiting;
            if self.settings.sync.mode != SynchronousMode::Off {
                self.acknowledged.extend(done);
            }
        }
    }

    /// A client commits a write on a server that accepts one (any of them, as clients with old
    /// connections would).
    pub fn write(&mut self) {
        let writable: Vec<usize> = (0..self.nodes.len()).filter(|&n| self.nodes[n].db.is_primary()).collect();
        if writable.is_empty() {
            return;
        }
        let node = writable[self.rng.index(writable.len())];
        let id = self.serial();
        let Some(data) = self.nodes[node].db.data.as_mut() else { return };
        data.log.push(id);
        let index = data.log.len() - 1;
        self.nodes[node].pending.push((index, id));
        self.acknowledge();
    }
}
