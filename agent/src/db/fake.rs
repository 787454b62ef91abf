//! An in-memory database engine, for tests of the loop: servers that replicate, crash, lose their link
//! and diverge, with no engine behind them. It is the second implementation of [`Database`], and shows
//! that the HA loop asks nothing PostgreSQL-specific of its adapter.
//!
//! A server's data is its history: the ids of the writes it holds, in order. A position is the length of
//! the history. A replica catches up with its upstream whenever it is observed, if its link is up and its
//! history is a prefix of the upstream's; otherwise it has diverged and does not stream.

use super::{DataState, Database, DbError, DbState, ReplicaLink, Role, StopMode, SyncRule, Upstream};
use super::{Position, Unit};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The servers of one cluster; cheap to clone, every clone sees the same servers.
#[derive(Clone, Default)]
pub(crate) struct FakeCluster {
    servers: Arc<Mutex<BTreeMap<String, Server>>>,
}

#[derive(Clone, Default)]
struct Server {
    data: Option<Data>,
    running: bool,
    role: Option<Role>,
    upstream: Option<String>,
    /// Its replication link is cut: it receives nothing.
    cut: bool,
    sync_rule: Option<SyncRule>,
    token: Option<u64>,
}

#[derive(Clone)]
struct Data {
    system_id: String,
    history: Vec<u64>,
    timeline: u64,
    was_primary: bool,
}

impl Data {
    /// How far it goes: the fake counts transactions, as MariaDB does (not WAL bytes as PostgreSQL).
    fn position(&self) -> Position {
        Position::new(Unit::Transactions, self.history.len() as u64)
    }
}

impl FakeCluster {
    /// The server called `name`, as a [`Database`].
    pub(crate) fn server(&self, name: &str) -> FakeServer {
        self.lock().entry(name.to_owned()).or_default();
        FakeServer { cluster: self.clone(), name: name.to_owned() }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Server>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The servers running as primary.
    pub(crate) fn primaries(&self) -> Vec<String> {
        let servers = self.lock();
        servers
            .iter()
            .filter(|(_, s)| s.running && s.role == Some(Role::Primary))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Commits write `id` on `name`, which must run as a primary.
    pub(crate) fn write(&self, name: &str, id: u64) -> Result<(), String> {
        let mut servers = self.lock();
        let server = servers.get_mut(name).ok_or(format!("no server {name}"))?;
        match (&mut server.data, server.running && server.role == Some(Role::Primary)) {
            (Some(data), true) => {
                data.history.push(id);
                Ok(())
            }
            _ => Err(format!("{name} does not run as a primary")),
        }
    }

    /// The writes `name` holds.
    pub(crate) fn history(&self, name: &str) -> Vec<u64> {
        self.lock().get(name).and_then(|s| s.data.as_ref()).map(|d| d.history.clone()).unwrap_or_default()
    }

    /// The fencing token `name` was last given.
    pub(crate) fn token(&self, name: &str) -> Option<u64> {
        self.lock().get(name).and_then(|s| s.token)
    }

    /// Cuts (`true`) or restores `name`'s replication link.
    pub(crate) fn cut(&self, name: &str, cut: bool) {
        self.lock().entry(name.to_owned()).or_default().cut = cut;
    }

    /// The server process of `name` dies (its data stays).
    pub(crate) fn crash(&self, name: &str) {
        self.lock().entry(name.to_owned()).or_default().running = false;
    }

    /// The history of every running server, by name: what a replica can stream.
    fn running_histories(servers: &BTreeMap<String, Server>) -> BTreeMap<String, Vec<u64>> {
        servers
            .iter()
            .filter(|(_, s)| s.running)
            .filter_map(|(n, s)| Some((n.clone(), s.data.as_ref()?.history.clone())))
            .collect()
    }

    /// Brings every streaming replica up to its upstream.
    fn replicate(servers: &mut BTreeMap<String, Server>) {
        let sources = Self::running_histories(servers);
        for server in servers.values_mut() {
            if let Some(history) = Self::upstream_history(server, &sources) {
                if let Some(data) = &mut server.data {
                    data.history = history.clone();
                }
            }
        }
    }

    /// The history a running replica streams from its upstream, if it streams.
    fn upstream_history<'a>(
        server: &Server,
        sources: &'a BTreeMap<String, Vec<u64>>,
    ) -> Option<&'a Vec<u64>> {
        if !server.running || server.role != Some(Role::Replica) || server.cut {
            return None;
        }
        let theirs = sources.get(server.upstream.as_ref()?)?;
        let mine = &server.data.as_ref()?.history;
        theirs.starts_with(mine).then_some(theirs)
    }
}

/// One server of a [`FakeCluster`].
pub(crate) struct FakeServer {
    cluster: FakeCluster,
    name: String,
}

impl FakeServer {
    /// Runs `change` on this server's record.
    fn change<T>(&self, change: impl FnOnce(&mut Server) -> T) -> T {
        let mut servers = self.cluster.lock();
        change(servers.entry(self.name.clone()).or_default())
    }

    fn needs_data(&self, action: &str) -> Result<(), DbError> {
        let present = self.change(|s| s.data.is_some());
        if present {
            Ok(())
        } else {
            Err(DbError::new(format!("{action} on {}", self.name), "no data directory"))
        }
    }

    /// Copies `upstream`'s data as a replica's.
    fn copy_from(&self, upstream: &Upstream, action: &str) -> Result<(), DbError> {
        let mut servers = self.cluster.lock();
        let source = servers
            .get(&upstream.name)
            .and_then(|s| s.data.clone())
            .filter(|_| servers.get(&upstream.name).is_some_and(|s| s.running));
        let Some(mut data) = source else {
            return Err(DbError::new(
                format!("{action} from {}", upstream.name),
                "the upstream does not run",
            ));
        };
        data.was_primary = false;
        let me = servers.entry(self.name.clone()).or_default();
        me.data = Some(data);
        me.upstream = Some(upstream.name.clone());
        Ok(())
    }
}

impl Database for FakeServer {
    fn connection_url(host: &str, port: u16) -> String {
        format!("fake://{host}:{port}")
    }

    async fn observe(&self) -> DbState {
        let mut servers = self.cluster.lock();
        FakeCluster::replicate(&mut servers);
        let sources = FakeCluster::running_histories(&servers);
        let replicas: Vec<ReplicaLink> = servers
            .iter()
            .filter(|(_, s)| s.upstream.as_deref() == Some(self.name.as_str()))
            .filter(|(_, s)| FakeCluster::upstream_history(s, &sources).is_some())
            .map(|(name, s)| ReplicaLink {
                name: name.clone(),
                streaming: true,
                synchronous: false,
                flushed: s.data.as_ref().map(Data::position),
                shown: Default::default(),
            })
            .collect();
        let me = servers.entry(self.name.clone()).or_default();
        let Some(data) = &me.data else { return DbState::stopped(DataState::Missing) };
        let present = DataState::Present { system_id: data.system_id.clone(), was_primary: data.was_primary };
        if !me.running {
            return DbState::stopped(present);
        }
        let streaming = FakeCluster::upstream_history(me, &sources).is_some();
        let primary = me.role == Some(Role::Primary);
        let position = Some(data.position());
        DbState {
            running: true,
            role: me.role,
            timeline: Some(data.timeline),
            position,
            replay_position: position.filter(|_| !primary),
            upstream: me.upstream.clone().filter(|_| !primary),
            streaming,
            server_version: Some(1),
            sync_rule: me.sync_rule.clone().filter(|_| primary),
            replicas: if primary { replicas } else { Vec::new() },
            ..DbState::stopped(present)
        }
    }

    async fn bootstrap(&self, token: Option<u64>) -> Result<(), DbError> {
        self.change(|s| {
            let data =
                Data { system_id: "fake-1".into(), history: Vec::new(), timeline: 1, was_primary: true };
            *s = Server { data: Some(data), running: true, role: Some(Role::Primary), ..s.clone() };
            s.token = token.or(s.token);
        });
        Ok(())
    }

    async fn clone_from(&self, upstream: &Upstream) -> Result<(), DbError> {
        self.copy_from(upstream, "clone")
    }

    async fn repair_from(&self, upstream: &Upstream) -> Result<(), DbError> {
        self.needs_data("rewind")?;
        self.copy_from(upstream, "rewind")
    }

    async fn remove_data(&self) -> Result<(), DbError> {
        self.change(|s| s.data = None);
        Ok(())
    }

    async fn set_data_aside(&self) -> Result<(), DbError> {
        self.remove_data().await
    }

    async fn start_primary(&self, token: Option<u64>) -> Result<(), DbError> {
        self.needs_data("start")?;
        self.change(|s| {
            s.token = token.or(s.token);
            s.running = true;
            s.role = Some(Role::Primary);
            s.upstream = None;
            s.data.iter_mut().for_each(|d| d.was_primary = true);
        });
        Ok(())
    }

    async fn follow(&self, upstream: Option<&Upstream>) -> Result<(), DbError> {
        self.needs_data("follow")?;
        self.change(|s| {
            s.running = true;
            s.role = Some(Role::Replica);
            s.upstream = upstream.map(|u| u.name.clone());
            s.data.iter_mut().for_each(|d| d.was_primary = false);
        });
        Ok(())
    }

    async fn stop(&self, _: StopMode) -> Result<(), DbError> {
        self.change(|s| s.running = false);
        Ok(())
    }

    async fn kill(&self) -> Result<(), DbError> {
        self.change(|s| s.running = false);
        Ok(())
    }

    async fn promote(&self, token: u64) -> Result<(), DbError> {
        let running_replica = self.change(|s| s.running && s.role == Some(Role::Replica));
        if !running_replica {
            return Err(DbError::new(format!("promote {}", self.name), "not a running replica"));
        }
        self.change(|s| {
            s.token = Some(token);
            s.role = Some(Role::Primary);
            s.upstream = None;
            s.data.iter_mut().for_each(|d| {
                d.timeline += 1;
                d.was_primary = true;
            });
        });
        Ok(())
    }

    async fn retain_for(
        &self,
        _: &crate::db::Retained,
    ) -> Result<std::collections::BTreeMap<String, u64>, DbError> {
        Ok(Default::default())
    }

    async fn set_sync_rule(&self, rule: &SyncRule) -> Result<(), DbError> {
        self.change(|s| s.sync_rule = Some(rule.clone()));
        Ok(())
    }

    async fn set_parameters(&self, _: &BTreeMap<String, String>) -> Result<(), DbError> {
        Ok(())
    }

    async fn set_upstream_timeout(&self, _: Duration) -> Result<(), DbError> {
        Ok(())
    }

    async fn set_use_slots(&self, _: bool) -> Result<(), DbError> {
        Ok(())
    }

    fn die_with_agent(&self, _: bool) {}

    async fn check_parameters(&self, _: &BTreeMap<String, String>) -> Result<(), String> {
        Ok(())
    }
}
