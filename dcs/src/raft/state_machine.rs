//! The replicated state as openraft's state machine: held in memory, persisted only as snapshots.
//!
//! At start [`StateMachineStore::restore`] loads the last snapshot from the database file (openraft 0.9 does
//! not), then openraft re-applies the committed log entries after it. Every applied batch and installed
//! snapshot is published on a watch channel ([`StateMachineStore::subscribe`]).

use super::storage::{get_value, DbError, Storage, SNAPSHOT};
use super::{Node, NodeId, TypeConfig};
use crate::command::Outcome;
use crate::state::ClusterState;
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// Key of the snapshot's [`SnapshotMeta`] (JSON) in the `snapshot` table.
const SNAPSHOT_META: &str = "meta";
/// Key of the snapshot's data (JSON of [`Applied`]) in the `snapshot` table.
const SNAPSHOT_DATA: &str = "data";

/// Everything applied so far; a snapshot is this, as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    /// The last entry applied.
    last_applied: Option<LogId<NodeId>>,
    /// The last membership config applied.
    last_membership: StoredMembership<NodeId, Node>,
    /// The cluster record.
    state: ClusterState,
}

impl Applied {
    /// The applied state a snapshot holds. Its `meta` is what openraft reasons with: the data's own copy
    /// of the last applied log id and membership must agree, and the meta wins.
    fn from_snapshot(
        storage: &Storage,
        meta: &SnapshotMeta<NodeId, Node>,
        data: &[u8],
    ) -> Result<Self, DbError> {
        let mut applied: Applied = storage.decode("decode the snapshot", data)?;
        applied.last_applied = meta.last_log_id;
        applied.last_membership = meta.last_membership.clone();
        Ok(applied)
    }

    /// Applies one committed entry and says what it did.
    fn apply(&mut self, entry: Entry<TypeConfig>) -> Outcome {
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Normal(command) => self.state.apply(entry.log_id.index, &command),
            // Non-command entries carry no outcome, but openraft wants one answer per entry; nobody
            // reads this one. They leave the state (and its revision) untouched.
            EntryPayload::Blank => Outcome::Stale,
            EntryPayload::Membership(membership) => {
                self.state.saw_node_ids(membership.nodes().map(|(id, _)| *id));
                self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                Outcome::Stale
            }
        }
    }
}

/// What the clones of one state machine share.
struct Shared {
    /// The applied state. Never held across an `.await`.
    applied: Mutex<Applied>,
    /// The state after the last applied batch or installed snapshot.
    published: watch::Sender<Arc<ClusterState>>,
    /// Serializes snapshot writes and holds the last log id of the newest snapshot persisted, so a slow
    /// build (openraft runs builds in their own task) never overwrites a newer installed snapshot.
    persisted: tokio::sync::Mutex<Option<LogId<NodeId>>>,
    /// Snapshots built since start, to tell snapshot ids apart.
    builds: AtomicU64,
}

/// The Raft state machine. Clones share the same state; a clone serves as the snapshot builder.
#[derive(Clone)]
pub(crate) struct StateMachineStore {
    shared: Arc<Shared>,
    storage: Storage,
}

impl StateMachineStore {
    /// The state machine as of the snapshot persisted in `storage`, or empty if there is none.
    pub(crate) async fn restore(storage: Storage) -> Result<Self, DbError> {
        let snapshot = load_snapshot(&storage).await?;
        let (persisted, applied) = match snapshot {
            Some((meta, data)) => (meta.last_log_id, Applied::from_snapshot(&storage, &meta, &data)?),
            None => (None, Applied::default()),
        };
        let shared = Shared {
            published: watch::Sender::new(Arc::new(applied.state.clone())),
            applied: Mutex::new(applied),
            persisted: tokio::sync::Mutex::new(persisted),
            builds: AtomicU64::new(0),
        };
        Ok(StateMachineStore { shared: Arc::new(shared), storage })
    }

    /// A receiver of the state after every applied batch or installed snapshot.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.shared.published.subscribe()
    }

    /// The state as applied on this node (tests read it directly; the node reads its subscription).
    #[cfg(test)]
    pub(crate) fn current(&self) -> Arc<ClusterState> {
        self.shared.published.borrow().clone()
    }

    /// The applied state, locked.
    fn lock(&self) -> Result<MutexGuard<'_, Applied>, Poisoned> {
        self.shared.applied.lock().map_err(|_| Poisoned)
    }

    /// Persists a snapshot unless a newer one already is; says whether it did.
    async fn persist(&self, meta: &SnapshotMeta<NodeId, Node>, data: Vec<u8>) -> Result<bool, DbError> {
        let mut newest = self.shared.persisted.lock().await;
        if meta.last_log_id < *newest {
            return Ok(false);
        }
        let meta_record = self.storage.encode("encode the snapshot meta", meta)?;
        let what = format!("save snapshot {}", meta.snapshot_id);
        self.storage
            .write(what, move |txn| {
                let mut table = txn.open_table(SNAPSHOT)?;
                table.insert(SNAPSHOT_META, meta_record.as_slice())?;
                table.insert(SNAPSHOT_DATA, data.as_slice())?;
                Ok(())
            })
            .await?;
        *newest = meta.last_log_id;
        Ok(true)
    }

    /// A new id for a snapshot up to `last`: `<term>-<index>-<builds since start>`.
    fn snapshot_id(&self, last: Option<LogId<NodeId>>) -> String {
        let n = self.shared.builds.fetch_add(1, Ordering::Relaxed) + 1;
        let (term, index) = last.map_or((0, 0), |id| (id.leader_id.term, id.index));
        format!("{term}-{index}-{n}")
    }
}

/// The applied state's lock is poisoned: a panic while applying entries left the state unknown.
struct Poisoned;

impl From<Poisoned> for StorageError<NodeId> {
    /// A storage error, on which openraft stops the node.
    fn from(_: Poisoned) -> Self {
        let e = AnyError::error("a panic while applying entries left the state machine unknown");
        StorageIOError::read_state_machine(e).into()
    }
}

/// The persisted snapshot's meta and data, if there is one.
async fn load_snapshot(storage: &Storage) -> Result<Option<(SnapshotMeta<NodeId, Node>, Vec<u8>)>, DbError> {
    let records = storage
        .read("read the snapshot", |txn| {
            Ok((get_value(txn, SNAPSHOT, SNAPSHOT_META)?, get_value(txn, SNAPSHOT, SNAPSHOT_DATA)?))
        })
        .await?;
    // Both are written in one transaction: they are present together or not at all.
    match records {
        (Some(meta), Some(data)) => Ok(Some((storage.decode("decode the snapshot meta", &meta)?, data))),
        _ => Ok(None),
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        let applied = self.lock()?;
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (outcomes, state) = {
            let mut applied = self.lock()?;
            let outcomes: Vec<Outcome> = entries.into_iter().map(|entry| applied.apply(entry)).collect();
            (outcomes, Arc::new(applied.state.clone()))
        };
        self.shared.published.send_replace(state);
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let decoded = Applied::from_snapshot(&self.storage, meta, &data);
        let applied = decoded.map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let persisted = self.persist(meta, data).await;
        persisted.map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let state = Arc::new(applied.state.clone());
        *self.lock()? = applied;
        self.shared.published.send_replace(state);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let loaded =
            load_snapshot(&self.storage).await.map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(loaded.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (data, last_applied, last_membership) = {
            let applied = self.lock()?;
            let data = self.storage.encode("encode a snapshot", &*applied);
            (data, applied.last_applied, applied.last_membership.clone())
        };
        let data = data.map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id: self.snapshot_id(last_applied),
        };
        let persisted = self.persist(&meta, data.clone()).await;
        persisted.map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::storage::testing::{blank, log_id, members, membership, normal};
    use super::*;
    use crate::command::{Command, Condition};
    use crate::raft::log_store::LogStore;
    use crate::record::{Key, Revision};
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
    use openraft::StorageHelper;
    use std::path::Path;
    use vigil_fencing::FencingToken;
    use vigil_fencing::MemberName;

    async fn open(dir: &Path) -> StateMachineStore {
        StateMachineStore::restore(Storage::open(dir).await.unwrap()).await.unwrap()
    }

    fn acquire(holder: &str) -> Command {
        Command::AcquireLease { holder: MemberName::new(holder).unwrap(), ttl_ms: 10_000, incarnation: 0 }
    }

    fn put(key: Key, value: serde_json::Value) -> Command {
        Command::Put { key, value, condition: Condition::Always, ttl_ms: None }
    }

    /// A blank, a membership, a grant, a write and a refused acquire: indices 1..=5.
    fn history() -> Vec<Entry<TypeConfig>> {
        vec![
            blank(1, 1),
            membership(1, 2, &[1, 2, 3]),
            normal(1, 3, acquire("pg-a")),
            normal(1, 4, put(Key::Config, serde_json::json!({"ttl": 30}))),
            normal(1, 5, acquire("pg-b")),
        ]
    }

    #[tokio::test]
    async fn apply_answers_every_entry_and_only_commands_change_the_state() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sm = open(tmp.path()).await;

        let outcomes = sm.apply(history()).await.unwrap();
        let token = FencingToken(3);
        assert_eq!(
            outcomes,
            [
                Outcome::Stale,
                Outcome::Stale,
                Outcome::LeaseGranted { token, renewed_at: Revision(3) },
                Outcome::Written { version: Revision(4) },
                Outcome::LeaseHeld { holder: MemberName::new("pg-a").unwrap(), token },
            ]
        );
        let outcomes = sm.apply([blank(2, 6)]).await.unwrap();
        assert_eq!(outcomes, [Outcome::Stale]);

        let (last_applied, last_membership) = sm.applied_state().await.unwrap();
        assert_eq!(last_applied, Some(log_id(2, 6)));
        assert_eq!(last_membership, StoredMembership::new(Some(log_id(1, 2)), members(&[1, 2, 3])));
        let state = sm.current();
        assert_eq!(state.revision, Revision(5), "a blank entry changed the revision");
        assert_eq!(state.leader.as_ref().map(|l| l.token), Some(token));
    }

    #[tokio::test]
    async fn a_snapshot_is_restored_on_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let (built, state) = {
            let mut sm = open(tmp.path()).await;
            sm.apply(history()).await.unwrap();
            let built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            (built, sm.current())
        };
        assert_eq!(built.meta.last_log_id, Some(log_id(1, 5)));
        assert_eq!(built.meta.snapshot_id, "1-5-1");

        let mut sm = open(tmp.path()).await;
        assert_eq!(sm.current(), state);
        let (last_applied, last_membership) = sm.applied_state().await.unwrap();
        assert_eq!(last_applied, Some(log_id(1, 5)));
        assert_eq!(last_membership, built.meta.last_membership);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());
    }

    #[tokio::test]
    async fn an_installed_snapshot_replaces_the_state_and_is_kept() {
        let leader_dir = tempfile::tempdir().unwrap();
        let mut leader = open(leader_dir.path()).await;
        leader.apply(history()).await.unwrap();
        let built = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();

        let follower_dir = tempfile::tempdir().unwrap();
        {
            let mut follower = open(follower_dir.path()).await;
            follower.apply([blank(1, 1)]).await.unwrap();
            let mut received = follower.begin_receiving_snapshot().await.unwrap();
            *received = *built.snapshot.clone();
            follower.install_snapshot(&built.meta, received).await.unwrap();

            assert_eq!(follower.current(), leader.current());
            assert_eq!(follower.applied_state().await.unwrap(), leader.applied_state().await.unwrap());
        }
        let mut follower = open(follower_dir.path()).await;
        assert_eq!(follower.current(), leader.current());
        assert_eq!(follower.get_current_snapshot().await.unwrap().unwrap().meta, built.meta);
    }

    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sm = open(tmp.path()).await;
        sm.apply(history()).await.unwrap();
        let newer = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();

        let older_dir = tempfile::tempdir().unwrap();
        let mut older_sm = open(older_dir.path()).await;
        older_sm.apply(history().into_iter().take(3)).await.unwrap();
        let older = older_sm.get_snapshot_builder().await.build_snapshot().await.unwrap();

        assert!(!sm.persist(&older.meta, older.snapshot.into_inner()).await.unwrap());
        assert_eq!(sm.get_current_snapshot().await.unwrap().unwrap().meta, newer.meta);
    }

    #[tokio::test]
    async fn subscribers_see_each_applied_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sm = open(tmp.path()).await;
        let mut rx = sm.subscribe();
        assert_eq!(**rx.borrow_and_update(), ClusterState::default());

        sm.apply(history()).await.unwrap();
        rx.changed().await.unwrap();
        let seen = rx.borrow_and_update().clone();
        assert_eq!(seen.revision, Revision(5));
        assert_eq!(seen, sm.current());
    }

    /// What a restart does: the snapshot is loaded, then openraft re-applies the committed entries after
    /// it (the log was purged up to the snapshot, as openraft does).
    #[tokio::test]
    async fn a_restart_rebuilds_the_state_from_snapshot_and_committed_log() {
        let tmp = tempfile::tempdir().unwrap();
        let mut entries = history();
        entries.push(normal(1, 6, put(Key::Status, serde_json::json!({"lsn": 42}))));
        entries.push(normal(1, 7, acquire("pg-a")));
        let before = {
            let storage = Storage::open(tmp.path()).await.unwrap();
            let (mut log, mut sm) =
                (LogStore::new(storage.clone()), StateMachineStore::restore(storage.clone()).await.unwrap());
            log.blocking_append(entries.clone()).await.unwrap();
            sm.apply(entries[..4].to_vec()).await.unwrap();
            sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            log.purge(log_id(1, 4)).await.unwrap();
            // Entry 7 is in the log but not committed: it must not be applied at restart.
            sm.apply(entries[4..6].to_vec()).await.unwrap();
            log.save_committed(Some(log_id(1, 6))).await.unwrap();
            sm.current()
        };

        let storage = Storage::open(tmp.path()).await.unwrap();
        let (mut log, mut sm) =
            (LogStore::new(storage.clone()), StateMachineStore::restore(storage.clone()).await.unwrap());
        assert_eq!(sm.current().revision, Revision(4), "the snapshot was taken at index 4");
        StorageHelper::new(&mut log, &mut sm).get_initial_state().await.unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 6)));

        assert_eq!(before.revision, Revision(6));
        assert_eq!(sm.current(), before);
    }
}
