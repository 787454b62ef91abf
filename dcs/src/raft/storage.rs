//! The node's one database file, `<data_dir>/dcs.redb`, and the only way this module touches it.
//!
//! redb commits are checksummed and copy-on-write, and every commit here is fsync'd before it returns
//! ([`Durability::Immediate`]): a crash loses at most the transaction in flight, which nobody was told had
//! succeeded. The file holds four tables:
//!
//! - `log`: Raft log index -> JSON of the entry ([`LogStore`]);
//! - `meta`: `vote`, `committed`, `last_purged` -> JSON ([`LogStore`]);
//! - `snapshot`: `meta`, `data` -> the last state-machine snapshot ([`StateMachineStore`]);
//! - `node`: whatever else this node keeps, such as its cluster id ([`Storage::read_meta`]).
//!
//! Every transaction runs on tokio's blocking pool, never on a runtime worker, and must finish within
//! [`IO_TIMEOUT`]: a hung disk becomes an error (on which openraft stops the node) instead of a silent stall.

use crate::error::DcsError;
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The database file's name inside the data directory.
const FILE_NAME: &str = "dcs.redb";

/// How long one transaction may take, its commit (fsync) included, before the disk is declared hung.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A table keyed by name, holding bytes.
pub(super) type NamedTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// The Raft log: index -> JSON of the entry.
pub(super) const LOG: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("log");
/// The log store's own records: vote, committed and last purged log ids.
pub(super) const RAFT_META: NamedTable = TableDefinition::new("meta");
/// The last state-machine snapshot.
pub(super) const SNAPSHOT: NamedTable = TableDefinition::new("snapshot");
/// Everything else this node keeps ([`Storage::read_meta`]), apart from Raft's records so that no key
/// chosen here can clobber them.
const NODE_META: NamedTable = TableDefinition::new("node");

/// Handle on the node's redb file, shared by the log store, the state machine and the node's identity.
#[derive(Clone)]
pub(crate) struct Storage {
    db: Arc<Database>,
    path: Arc<Path>,
    /// [`IO_TIMEOUT`], shorter in tests.
    io_timeout: Duration,
}

/// A failed database operation: the file, what was being done, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}: {cause}", .path.display())]
pub(crate) struct DbError {
    /// The database file.
    path: Arc<Path>,
    /// What was being done, e.g. "append log entries".
    what: Cow<'static, str>,
    /// Why it failed.
    cause: Cause,
}

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
enum Cause {
    /// redb failed (I/O, corruption, ...). Boxed: redb's error is large, and this one travels up through
    /// every storage call.
    #[error(transparent)]
    Redb(Box<redb::Error>),
    /// Another process holds the file's lock.
    #[error("the file is locked by another process (is another agent using this data directory?)")]
    Locked,
    /// A record did not encode or decode.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The transaction did not finish in time: the disk is taken to be hung.
    #[error("no answer from the disk within {0:?}")]
    TimedOut(Duration),
    /// The blocking task panicked or was cancelled.
    #[error("the storage task failed: {0}")]
    Task(tokio::task::JoinError),
}

impl From<DbError> for DcsError {
    fn from(e: DbError) -> Self {
        DcsError::Storage(e.to_string())
    }
}

/// Removes a member's store (`<dir>/dcs.redb`) and nothing else of `dir`, which may hold other files
/// (Patroni's samples keep `raft.data_dir` beside other data). A store that is not there is no error.
pub fn remove_store(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(FILE_NAME)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Storage {
    /// Opens or creates `<dir>/dcs.redb` (creating `dir`); fails fast with [`DcsError::Storage`] naming the
    /// path if another process holds it (redb's file lock), or if the file is corrupt.
    pub(crate) async fn open(dir: &Path) -> Result<Storage, DcsError> {
        let path: Arc<Path> = dir.join(FILE_NAME).into();
        let (dir, file) = (dir.to_owned(), path.clone());
        let opened = run_blocking(&path, "open", IO_TIMEOUT, move || open_database(&dir, &file)).await;
        let db = opened.map_err(|mut e| {
            if matches!(&e.cause, Cause::Redb(r) if matches!(**r, redb::Error::DatabaseAlreadyOpen)) {
                e.cause = Cause::Locked;
            }
            e
        })?;
        let storage = Storage { db: Arc::new(db), path, io_timeout: IO_TIMEOUT };
        storage.write("create the tables", create_tables).await?;
        Ok(storage)
    }

    /// The value this node keeps under `key`, if any.
    pub(crate) async fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, DcsError> {
        Ok(self.get(format!("read node record {key:?}"), NODE_META, key).await?)
    }

    /// Keeps `value` under `key`. Durable (fsync'd) before it returns.
    pub(crate) async fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), DcsError> {
        Ok(self.put(format!("write node record {key:?}"), NODE_META, key, value.to_vec()).await?)
    }

    /// Runs `f` in a read transaction on the blocking pool.
    pub(super) async fn read<T, F>(&self, what: impl Into<Cow<'static, str>>, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, redb::Error> + Send + 'static,
    {
        let db = self.db.clone();
        run_blocking(&self.path, what, self.io_timeout, move || f(&db.begin_read()?)).await
    }

    /// Runs `f` in one write transaction on the blocking pool and commits it durably; nothing of it is
    /// kept if `f` fails.
    pub(super) async fn write<T, F>(&self, what: impl Into<Cow<'static, str>>, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, redb::Error> + Send + 'static,
    {
        let db = self.db.clone();
        run_blocking(&self.path, what, self.io_timeout, move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            let value = f(&txn)?;
            txn.commit()?;
            Ok(value)
        })
        .await
    }

    /// The bytes under `key` in `table`, if any.
    pub(super) async fn get(
        &self,
        what: impl Into<Cow<'static, str>>,
        table: NamedTable,
        key: &str,
    ) -> Result<Option<Vec<u8>>, DbError> {
        let key = key.to_owned();
        self.read(what, move |txn| get_value(txn, table, &key)).await
    }

    /// Stores `value` under `key` in `table`, durably.
    pub(super) async fn put(
        &self,
        what: impl Into<Cow<'static, str>>,
        table: NamedTable,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), DbError> {
        let key = key.to_owned();
        self.write(what, move |txn| {
            txn.open_table(table)?.insert(key.as_str(), value.as_slice())?;
            Ok(())
        })
        .await
    }

    /// The JSON value under `key` in `table`, decoded, if any.
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        what: &'static str,
        table: NamedTable,
        key: &str,
    ) -> Result<Option<T>, DbError> {
        let bytes = self.get(what, table, key).await?;
        bytes.map(|b| self.decode(what, &b)).transpose()
    }

    /// Stores `value` as JSON under `key` in `table`, durably.
    pub(super) async fn put_json<T: Serialize>(
        &self,
        what: &'static str,
        table: NamedTable,
        key: &str,
        value: &T,
    ) -> Result<(), DbError> {
        let bytes = self.encode(what, value)?;
        self.put(what, table, key, bytes).await
    }

    /// `value` as JSON.
    pub(super) fn encode<T: Serialize>(&self, what: &'static str, value: &T) -> Result<Vec<u8>, DbError> {
        serde_json::to_vec(value).map_err(|e| self.error(what, e.into()))
    }

    /// The value whose JSON is `bytes`.
    pub(super) fn decode<T: DeserializeOwned>(&self, what: &'static str, bytes: &[u8]) -> Result<T, DbError> {
        serde_json::from_slice(bytes).map_err(|e| self.error(what, e.into()))
    }

    /// An error about this file.
    fn error(&self, what: &'static str, cause: Cause) -> DbError {
        DbError { path: self.path.clone(), what: what.into(), cause }
    }
}

/// The bytes under `key` in `table`, if any, within a transaction.
pub(super) fn get_value(
    txn: &ReadTransaction,
    table: NamedTable,
    key: &str,
) -> Result<Option<Vec<u8>>, redb::Error> {
    let table = txn.open_table(table)?;
    let value = table.get(key)?.map(|v| v.value().to_vec());
    Ok(value)
}

/// Creates `dir` and opens (or creates) the database at `path`.
fn open_database(dir: &Path, path: &Path) -> Result<Database, redb::Error> {
    std::fs::create_dir_all(dir)?;
    // A plain open trusts the file and may panic on a corrupt one; the check turns corruption into an
    // error. The file is small, so checking it costs little.
    let db = redb::Builder::new().set_check_integrity_on_open(true).create(path)?;
    Ok(db)
}

/// Creates every table, so that reads of a fresh file find them empty rather than missing.
fn create_tables(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(LOG)?;
    for table in [RAFT_META, SNAPSHOT, NODE_META] {
        txn.open_table(table)?;
    }
    Ok(())
}

/// Runs `f` on tokio's blocking pool and waits at most `timeout` for it.
///
/// After a timeout the blocking thread may still be stuck in the disk; the caller gets an error and the
/// node is expected to stop (openraft does on any storage error).
async fn run_blocking<T, F>(
    path: &Arc<Path>,
    what: impl Into<Cow<'static, str>>,
    timeout: Duration,
    f: F,
) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, redb::Error> + Send + 'static,
{
    let cause = match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(Ok(value))) => return Ok(value),
        Ok(Ok(Err(e))) => Cause::Redb(Box::new(e)),
        Ok(Err(join)) => Cause::Task(join),
        Err(_elapsed) => Cause::TimedOut(timeout),
    };
    Err(DbError { path: path.clone(), what: what.into(), cause })
}

/// Log entries and state-machine fixtures shared by the tests of this module's files.
#[cfg(test)]
pub(super) mod testing {
    use crate::command::Command;
    use crate::raft::{NodeId, TypeConfig};
    use crate::RaftMember;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    /// The log id at `index` of a leader elected in `term` (node 1).
    pub(crate) fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    /// A blank entry (what a new leader appends first).
    pub(crate) fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry { log_id: log_id(term, index), payload: EntryPayload::Blank }
    }

    /// An entry carrying `command`.
    pub(crate) fn normal(term: u64, index: u64, command: Command) -> Entry<TypeConfig> {
        Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(command) }
    }

    /// A membership entry making `voters` the voters, each at a made-up address.
    pub(crate) fn membership(term: u64, index: u64, voters: &[NodeId]) -> Entry<TypeConfig> {
        Entry { log_id: log_id(term, index), payload: EntryPayload::Membership(members(voters)) }
    }

    /// The membership config whose voters are `voters`.
    pub(crate) fn members(voters: &[NodeId]) -> Membership<NodeId, RaftMember> {
        let ids: BTreeSet<NodeId> = voters.iter().copied().collect();
        let nodes: BTreeMap<NodeId, RaftMember> =
            voters.iter().map(|id| (*id, RaftMember::at(format!("10.0.0.{id}:7100")))).collect();
        Membership::new(vec![ids], nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log_store::LogStore;

    #[tokio::test]
    async fn meta_survives_a_reopen_and_the_directory_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data").join("dcs");
        {
            let storage = Storage::open(&dir).await.unwrap();
            assert_eq!(storage.read_meta("cluster_id").await.unwrap(), None);
            storage.write_meta("cluster_id", b"c-1").await.unwrap();
            storage.write_meta("cluster_id", b"c-2").await.unwrap();
        }
        let storage = Storage::open(&dir).await.unwrap();
        assert_eq!(storage.read_meta("cluster_id").await.unwrap(), Some(b"c-2".to_vec()));
        assert!(dir.join(FILE_NAME).is_file());
    }

    #[tokio::test]
    async fn node_records_do_not_share_keys_with_raft() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = Storage::open(tmp.path()).await.unwrap();
        storage.write_meta("vote", b"not a vote").await.unwrap();
        let mut log = LogStore::new(storage.clone());
        assert_eq!(openraft::storage::RaftLogStorage::read_vote(&mut log).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_directory_fails_while_the_first_is_open() {
        let tmp = tempfile::tempdir().unwrap();
        let first = Storage::open(tmp.path()).await.unwrap();

        let err = match Storage::open(tmp.path()).await {
            Ok(_) => panic!("a second open of a held file succeeded"),
            Err(e) => e.to_string(),
        };
        let path = tmp.path().join(FILE_NAME);
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("locked by another process"), "{err}");

        drop(first);
        Storage::open(tmp.path()).await.unwrap();
    }

    #[tokio::test]
    async fn a_stalled_transaction_fails_after_the_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let mut storage = Storage::open(tmp.path()).await.unwrap();
        storage.io_timeout = Duration::from_millis(50);

        let stalled = storage.write("stall", |_| {
            std::thread::sleep(Duration::from_millis(500));
            Ok(())
        });
        let err = stalled.await.unwrap_err().to_string();
        assert!(err.ends_with("stall: no answer from the disk within 50ms"), "{err}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_fails_to_open_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE_NAME);
        std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();

        let err = match Storage::open(tmp.path()).await {
            Ok(_) => panic!("a garbage file opened as a database"),
            Err(e) => e,
        };
        assert!(matches!(&err, DcsError::Storage(m) if m.contains(&path.display().to_string())), "{err}");
    }
}
