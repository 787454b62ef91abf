//! The Raft log, vote and committed log id, kept in the node's database file ([`Storage`]).
//!
//! openraft's durability contract (storage v2) and how it is met:
//! - `save_vote` commits (fsync) before it returns;
//! - `append` writes all its entries in one transaction, commits it, then reports the flush to openraft
//!   and returns, so entries are durable and readable by then;
//! - `save_committed` persists the committed log id, so that at start openraft re-applies the log
//!   entries between the state machine's snapshot and that id (the state machine lives in memory);
//! - `purge` records the last purged log id in the same transaction that deletes the entries, so the log
//!   state never shows a hole.
//!
//! Calls are awaited one at a time by openraft and redb runs one write transaction at a time, so writes
//! are applied in the order openraft issued them.

use super::storage::{get_value, DbError, Storage, LOG, RAFT_META};
use super::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use redb::ReadableTable;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

/// Key of the vote in the `meta` table.
const VOTE: &str = "vote";
/// Key of the committed log id in the `meta` table.
const COMMITTED: &str = "committed";
/// Key of the last purged log id in the `meta` table.
const LAST_PURGED: &str = "last_purged";

/// The Raft log store. Clones share the same database file; a clone serves as the log reader.
#[derive(Clone)]
pub(crate) struct LogStore {
    storage: Storage,
}

impl LogStore {
    /// The log store kept in `storage`.
    pub(crate) fn new(storage: Storage) -> Self {
        LogStore { storage }
    }

    /// The entries whose index lies within `range`, in index order.
    async fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry<TypeConfig>>, DbError> {
        let records = self
            .storage
            .read("read log entries", move |txn| {
                let log = txn.open_table(LOG)?;
                let mut records = Vec::new();
                for item in log.range(range)? {
                    records.push(item?.1.value().to_vec());
                }
                Ok(records)
            })
            .await?;
        records.iter().map(|r| self.storage.decode("decode a log entry", r)).collect()
    }

    /// The last purged log id and the last log id (the last entry's, or the last purged one when the log
    /// is empty).
    async fn log_state(&self) -> Result<LogState<TypeConfig>, DbError> {
        let (purged, last) = self
            .storage
            .read("read the log state", |txn| {
                let purged = get_value(txn, RAFT_META, LAST_PURGED)?;
                let last = txn.open_table(LOG)?.last()?.map(|(_, entry)| entry.value().to_vec());
                Ok((purged, last))
            })
            .await?;
        let last_purged_log_id: Option<LogId<NodeId>> =
            purged.map(|b| self.storage.decode("decode the last purged log id", &b)).transpose()?;
        let last_entry: Option<Entry<TypeConfig>> =
            last.map(|b| self.storage.decode("decode the last log entry", &b)).transpose()?;
        let last_log_id = last_entry.map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    /// Writes `entries` in one durable transaction.
    async fn write_entries(&self, entries: Vec<Entry<TypeConfig>>) -> Result<(), DbError> {
        let records = entries
            .iter()
            .map(|e| Ok((e.log_id.index, self.storage.encode("encode a log entry", e)?)))
            .collect::<Result<Vec<_>, DbError>>()?;
        self.storage
            .write("append log entries", move |txn| {
                let mut log = txn.open_table(LOG)?;
                for (index, record) in &records {
                    log.insert(index, record.as_slice())?;
                }
                Ok(())
            })
            .await
    }

    /// Deletes the entries from `index` on.
    async fn delete_from(&self, index: u64) -> Result<(), DbError> {
        self.storage
            .write(format!("truncate the log from index {index}"), move |txn| {
                txn.open_table(LOG)?.retain_in(index.., |_, _| false)?;
                Ok(())
            })
            .await
    }

    /// Deletes the entries up to `upto` inclusive and records it as the last purged log id.
    async fn purge_upto(&self, upto: LogId<NodeId>) -> Result<(), DbError> {
        let record = self.storage.encode("encode the last purged log id", &upto)?;
        self.storage
            .write(format!("purge the log up to index {}", upto.index), move |txn| {
                txn.open_table(RAFT_META)?.insert(LAST_PURGED, record.as_slice())?;
                txn.open_table(LOG)?.retain_in(..=upto.index, |_, _| false)?;
                Ok(())
            })
            .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        Ok(self.entries(range).await.map_err(|e| StorageIOError::read_logs(&e))?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        Ok(self.log_state().await.map_err(|e| StorageIOError::read_logs(&e))?)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let saved = self.storage.put_json("save the vote", RAFT_META, VOTE, vote).await;
        Ok(saved.map_err(|e| StorageIOError::write_vote(&e))?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        let vote = self.storage.get_json("read the vote", RAFT_META, VOTE).await;
        Ok(vote.map_err(|e| StorageIOError::read_vote(&e))?)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        let saved =
            self.storage.put_json("save the committed log id", RAFT_META, COMMITTED, &committed).await;
        Ok(saved.map_err(|e| StorageIOError::write(&e))?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let committed: Result<Option<Option<LogId<NodeId>>>, _> =
            self.storage.get_json("read the committed log id", RAFT_META, COMMITTED).await;
        Ok(committed.map_err(|e| StorageIOError::read(&e))?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let written = self.write_entries(entries.into_iter().collect()).await;
        written.map_err(|e| StorageIOError::write_logs(&e))?;
        // The transaction is committed, hence on disk: only now may openraft count these entries.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        Ok(self.delete_from(log_id.index).await.map_err(|e| StorageIOError::write_logs(&e))?)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        Ok(self.purge_upto(log_id).await.map_err(|e| StorageIOError::write_logs(&e))?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::state_machine::StateMachineStore;
    use super::super::storage::testing::{blank, log_id, membership, normal};
    use super::*;
    use crate::command::Command;
    use openraft::storage::{RaftLogStorageExt, RaftStateMachine};
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::CommittedLeaderId;
    use tempfile::TempDir;
    use vigil_fencing::MemberName;

    async fn open(dir: &TempDir) -> LogStore {
        LogStore::new(Storage::open(dir.path()).await.unwrap())
    }

    /// Entries 1..=`last`: a blank, a membership, then commands.
    fn entries(last: u64) -> Vec<Entry<TypeConfig>> {
        (1..=last)
            .map(|i| match i {
                1 => blank(1, 1),
                2 => membership(1, 2, &[1, 2, 3]),
                _ => normal(
                    1,
                    i,
                    Command::AcquireLease {
                        holder: MemberName::new("pg-a").unwrap(),
                        ttl_ms: i,
                        incarnation: 0,
                    },
                ),
            })
            .collect()
    }

    async fn indices(store: &mut LogStore) -> Vec<u64> {
        let entries = store.try_get_log_entries(..).await.unwrap();
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn entries_vote_and_committed_survive_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let vote = Vote::new_committed(3, 2);
        {
            let mut store = open(&tmp).await;
            store.blocking_append(entries(3)).await.unwrap();
            store.blocking_append(entries(5).split_off(3)).await.unwrap();
            store.save_vote(&vote).await.unwrap();
            store.save_committed(Some(log_id(1, 4))).await.unwrap();
        }
        let mut store = open(&tmp).await;
        let read = store.try_get_log_entries(1..6).await.unwrap();
        assert_eq!(read, entries(5));
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 4)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (None, Some(log_id(1, 5))));
    }

    #[tokio::test]
    async fn a_fresh_store_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp).await;
        assert_eq!(store.read_vote().await.unwrap(), None);
        assert_eq!(store.read_committed().await.unwrap(), None);
        let state = store.get_log_state().await.unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (None, None));
        assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn reads_honour_the_range_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp).await;
        store.blocking_append(entries(6)).await.unwrap();
        let index = |v: Vec<Entry<TypeConfig>>| v.iter().map(|e| e.log_id.index).collect::<Vec<_>>();
        assert_eq!(index(store.try_get_log_entries(2..4).await.unwrap()), [2, 3]);
        assert_eq!(index(store.try_get_log_entries(5..).await.unwrap()), [5, 6]);
        assert_eq!(index(store.try_get_log_entries(..=2).await.unwrap()), [1, 2]);
        assert!(store.try_get_log_entries(4..4).await.unwrap().is_empty());
        assert!(store.try_get_log_entries(7..9).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn truncate_deletes_from_the_index_on() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp).await;
        store.blocking_append(entries(6)).await.unwrap();
        store.truncate(log_id(1, 4)).await.unwrap();
        assert_eq!(indices(&mut store).await, [1, 2, 3]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (None, Some(log_id(1, 3))));

        // A new leader's entries replace the truncated ones.
        let replacement = normal(
            2,
            4,
            Command::AcquireLease { holder: MemberName::new("pg-b").unwrap(), ttl_ms: 1, incarnation: 0 },
        );
        store.blocking_append([replacement.clone()]).await.unwrap();
        assert_eq!(store.try_get_log_entries(4..).await.unwrap(), [replacement]);
    }

    #[tokio::test]
    async fn purge_deletes_up_to_the_index_and_records_it() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut store = open(&tmp).await;
            store.blocking_append(entries(6)).await.unwrap();
            store.purge(log_id(1, 3)).await.unwrap();
            assert_eq!(indices(&mut store).await, [4, 5, 6]);
        }
        let mut store = open(&tmp).await;
        let state = store.get_log_state().await.unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 3)), Some(log_id(1, 6))));
    }

    #[tokio::test]
    async fn after_purging_everything_the_last_log_id_is_the_last_purged() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp).await;
        store.blocking_append(entries(4)).await.unwrap();
        store.purge(log_id(1, 4)).await.unwrap();
        assert!(indices(&mut store).await.is_empty());
        let state = store.get_log_state().await.unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 4)), Some(log_id(1, 4))));

        // The log goes on after the purged id.
        store.blocking_append([blank(2, 5)]).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 4)), Some(log_id(2, 5))));
    }

    #[tokio::test]
    async fn a_vote_is_replaced_and_committed_can_be_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(&tmp).await;
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        store.save_vote(&Vote::new(2, 3)).await.unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
        store.save_committed(Some(LogId::new(CommittedLeaderId::new(2, 3), 7))).await.unwrap();
        store.save_committed(None).await.unwrap();
        assert_eq!(store.read_committed().await.unwrap(), None);
    }

    /// Builds a fresh store in its own directory for openraft's storage test suite.
    struct FreshStore;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for FreshStore {
        async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
            let dir = tempfile::tempdir().unwrap();
            let storage = Storage::open(dir.path()).await.unwrap();
            let mut sm = StateMachineStore::restore(storage.clone()).await.unwrap();
            assert_eq!(sm.applied_state().await.unwrap().0, None);
            Ok((dir, LogStore::new(storage.clone()), sm))
        }
    }

    /// openraft's own conformance suite for log stores and state machines. It runs each case on its own
    /// runtime, so this is a plain test.
    #[test]
    fn openraft_storage_suite_passes() {
        Suite::test_all(FreshStore).unwrap();
    }
}
