//! Semi-synchronous replication: which replicas acknowledge the primary's commits.
//!
//! A MariaDB primary with `rpl_semi_sync_master_enabled` waits at each commit, once it is in the binary
//! log (`AFTER_SYNC`), for one acknowledgement from any replica whose replica side is enabled; its timeout
//! is effectively infinite, so it never falls back to asynchronous commits on its own: the agent decides
//! that. MariaDB cannot wait for named replicas, so the primary's adapter makes the names true: it enables
//! the replica side on exactly the replicas its rule names (connecting to their servers as the superuser)
//! and disables it on the others. Every server starts with its replica side off and turns it off whenever
//! it follows another upstream, so only the primary it follows turns it on.
//!
//! The rule is reported as applied only while every replica that acknowledges is one it names, and the
//! server counts no more acknowledging replicas than the adapter verified: a commit is then held by a
//! named replica, the promise the `sync` key makes. Anything else is reported with no names, so the policy
//! takes back any standby it published and sets the rule again.

use super::dialect::Dialect;
use super::sql::{self, ReplicaHost, Session};
use super::{gtid, server, MariaDb, MariaDbSettings};
use crate::db::{DbError, Position, ReplicaLink, SyncRule, Unit};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long connecting to a replica's server and asking it may take.
const REPLICA_TIMEOUT: Duration = Duration::from_millis(500);
/// How long turning a replica's side on or off may take (its IO thread restarted).
const SET_TIMEOUT: Duration = Duration::from_secs(5);

/// The primary side, as the server reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Master {
    /// `rpl_semi_sync_master_enabled`.
    pub enabled: bool,
    /// `Rpl_semi_sync_master_status`: commits wait for an acknowledgement now.
    pub waiting: bool,
    /// `Rpl_semi_sync_master_clients`: how many connected replicas acknowledge.
    pub clients: u64,
}

/// A connected replica, as its own server reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Peer {
    /// Its member name.
    pub name: String,
    /// Whether it acknowledges commits (`Rpl_semi_sync_slave_status`); `None`: it could not be asked.
    pub acking: Option<bool>,
    /// The sequence number it received last in the cluster's domain.
    pub received: Option<u64>,
}

/// What the primary's replication looks like: a link per connected replica, and the rule in force.
pub(super) fn links_and_rule(master: Master, peers: &[Peer], set: &SyncRule) -> (Vec<ReplicaLink>, SyncRule) {
    let acking: BTreeSet<&str> =
        peers.iter().filter(|p| p.acking == Some(true)).map(|p| p.name.as_str()).collect();
    let any = matches!(set, SyncRule::Off | SyncRule::AnyReplica);
    let named = |name: &str| any || set.names().iter().any(|n| n == name);
    let trusted = master.enabled
        && master.waiting
        && master.clients <= acking.len() as u64
        && acking.iter().all(|name| named(name));
    let links = peers
        .iter()
        .map(|peer| ReplicaLink {
            name: peer.name.clone(),
            streaming: true,
            synchronous: trusted && acking.contains(peer.name.as_str()),
            flushed: peer.received.map(|at| Position::new(Unit::Transactions, at)),
            shown: Default::default(),
        })
        .collect();
    let keep = |names: &[String]| -> Vec<String> {
        names.iter().filter(|n| trusted && acking.contains(n.as_str())).cloned().collect()
    };
    let rule = match set {
        _ if !(master.enabled && master.waiting) => SyncRule::Off,
        SyncRule::Off | SyncRule::AnyReplica => SyncRule::AnyReplica,
        SyncRule::First { count, names } => SyncRule::First { count: *count, names: keep(names) },
        SyncRule::Any { count, names } => SyncRule::Any { count: *count, names: keep(names) },
    };
    (links, rule)
}

/// The primary side of the server `session` is connected to.
pub(super) async fn master(session: &mut Session, dialect: Dialect) -> Result<Master, String> {
    let [waiting, clients, _] = dialect.semi_sync_status();
    let query = format!(
        "SELECT {}, {}, {}",
        dialect.waits_for_replicas(),
        dialect.status(&waiting),
        dialect.status(&clients)
    );
    let row: Option<(u8, String, u64)> = mysql_async::prelude::Queryable::query_first(session, query)
        .await
        .map_err(|e| format!("read the semi-synchronous state: {e}"))?;
    let (enabled, status, clients) = row.ok_or("read the semi-synchronous state: no row")?;
    Ok(Master { enabled: enabled != 0, waiting: status.eq_ignore_ascii_case("on"), clients })
}

/// Whether the replica at `session` acknowledges commits, and what it received last in `domain`.
async fn ask(session: &mut Session, name: &str, domain: u32, dialect: Dialect) -> Peer {
    let [_, _, acking] = dialect.semi_sync_status();
    let acking: Option<String> =
        mysql_async::prelude::Queryable::query_first(session, format!("SELECT {}", dialect.status(&acking)))
            .await
            .ok()
            .flatten();
    let received = match sql::slave_status(session, dialect).await {
        Ok(Some(status)) => gtid::seq_in(&status.io_pos, domain).ok(),
        _ => None,
    };
    Peer { name: name.to_owned(), acking: acking.map(|v| v.eq_ignore_ascii_case("on")), received }
}

/// Turns the replica side of the server at `session` on or off; it takes effect when its IO thread
/// connects again. Bounded by [`SET_TIMEOUT`].
async fn set_acking(session: &mut Session, on: bool, dialect: Dialect) -> Result<(), String> {
    let set = async {
        for statement in [&dialect.acknowledge(on), dialect.stop_io_thread(), dialect.start_io_thread()] {
            sql::run(session, statement).await?;
        }
        Ok(())
    };
    tokio::time::timeout(SET_TIMEOUT, set)
        .await
        .unwrap_or_else(|_| Err(format!("not done within {SET_TIMEOUT:?}")))
}

/// A connected replica's server, reached and asked.
struct Visit {
    /// What it said of itself (nothing when it could not be reached).
    peer: Peer,
    /// The session with it, with the address it was reached at.
    reached: Option<(Session, (String, u16))>,
}

/// Reaches the server of replica `name` at the first of `addresses` that answers as `name` and asks it,
/// all within [`REPLICA_TIMEOUT`] per address.
async fn visit(settings: &MariaDbSettings, name: String, addresses: Vec<(String, u16)>) -> Visit {
    let (su, dialect) = (&settings.superuser, settings.dialect());
    for (host, port) in addresses {
        let reach = async {
            let mut conn = sql::connect_tcp(&host, port, &su.username, su.password.expose(), REPLICA_TIMEOUT)
                .await
                .ok()?;
            let reported: Option<String> =
                mysql_async::prelude::Queryable::query_first(&mut conn, "SELECT @@report_host").await.ok()?;
            if reported.as_deref() != Some(name.as_str()) {
                return None;
            }
            let peer = ask(&mut conn, &name, settings.domain, dialect).await;
            Some(Visit { peer, reached: Some((conn, (host.clone(), port))) })
        };
        if let Ok(Some(visit)) = tokio::time::timeout(REPLICA_TIMEOUT, reach).await {
            return visit;
        }
    }
    Visit { peer: Peer { name, ..Peer::default() }, reached: None }
}

impl MariaDb {
    /// The servers of the replicas connected to this one, reached and asked at once, by member name. A
    /// replica reports its name and port; its host is the one it was found at last, else one of the
    /// addresses replication connections come from (the server there must report the same name). An
    /// address that stops answering is forgotten, so that the next look searches again.
    async fn visit_replicas(&self, session: &mut Session, replicas: &[ReplicaHost]) -> Vec<Visit> {
        let from: Vec<String> = mysql_async::prelude::Queryable::query(
            session,
            "SELECT DISTINCT SUBSTRING_INDEX(HOST, ':', 1) FROM information_schema.PROCESSLIST \
             WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .await
        .unwrap_or_default();
        let known = self.runtime().replica_addresses.clone();
        let mut tasks = tokio::task::JoinSet::new();
        for replica in replicas {
            let addresses: Vec<(String, u16)> = match known.get(&replica.name) {
                Some(address) => vec![address.clone()],
                None => from
                    .iter()
                    .map(|host| (host.clone(), replica.port))
                    .filter(|address| !known.values().any(|k| k == address))
                    .collect(),
            };
            let (settings, name) = (self.settings.clone(), replica.name.clone());
            tasks.spawn(async move { visit(&settings, name, addresses).await });
        }
        let mut visits = Vec::new();
        while let Some(Ok(visit)) = tasks.join_next().await {
            let mut runtime = self.runtime();
            match &visit.reached {
                Some((_, address)) => {
                    runtime.replica_addresses.insert(visit.peer.name.clone(), address.clone())
                }
                None => runtime.replica_addresses.remove(&visit.peer.name),
            };
            drop(runtime);
            visits.push(visit);
        }
        visits.sort_by(|a, b| a.peer.name.cmp(&b.peer.name));
        visits
    }

    /// The primary's links to its replicas and the rule in force, as [`links_and_rule`] reports them. The
    /// replicas are asked only while commits wait for them.
    pub(super) async fn semi_sync_state(
        &self,
        session: &mut Session,
        replicas: &[ReplicaHost],
    ) -> (Vec<ReplicaLink>, SyncRule) {
        let master = master(session, self.settings.dialect()).await.unwrap_or_default();
        let set = self.runtime().sync.clone();
        let peers: Vec<Peer> = match master.enabled {
            false => replicas.iter().map(|r| Peer { name: r.name.clone(), ..Peer::default() }).collect(),
            true => {
                let mut peers = Vec::new();
                for visit in self.visit_replicas(session, replicas).await {
                    if let Some((conn, _)) = visit.reached {
                        drop(conn.disconnect().await);
                    }
                    peers.push(visit.peer);
                }
                peers
            }
        };
        links_and_rule(master, &peers, &set)
    }

    /// Remembers `rule` for every later opening of a primary and, on a running primary, makes the replicas
    /// it names acknowledge commits and the others not, then has commits wait (or not). On a replica it
    /// takes effect when it is promoted. MariaDB waits for one acknowledgement: a rule asking for more is
    /// refused.
    pub(super) async fn set_sync_rule_now(&self, rule: &SyncRule) -> Result<(), DbError> {
        let action = "set the synchronous rule";
        if let SyncRule::First { count, .. } | SyncRule::Any { count, .. } = rule {
            if *count > 1 {
                return Err(DbError::new(
                    action,
                    format!(
                        "MariaDB's semi-synchronous replication waits for one acknowledgement, not {count}: set \
                         synchronous_node_count to 1"
                    ),
                ));
            }
        }
        self.runtime().sync = rule.clone();
        if !server::runs(&self.settings) {
            return Ok(());
        }
        let mut session = self.admin(action).await?;
        let dialect = self.settings.dialect();
        let live = sql::live(&mut session, dialect).await.map_err(|e| DbError::new(action, e))?;
        if !live.is_primary() {
            return Ok(());
        }
        let wait = *rule != SyncRule::Off;
        let fail = |e: String| DbError::new(action, e);
        if !wait {
            sql::run(&mut session, &self.acknowledgements()).await.map_err(fail)?;
        }
        let wanted = |name: &str| *rule == SyncRule::AnyReplica || rule.names().iter().any(|n| n == name);
        let mut failures = Vec::new();
        let mut visits = self.visit_replicas(&mut session, &live.replicas).await;
        // Those that must stop acknowledging first.
        visits.sort_by_key(|visit| wanted(&visit.peer.name));
        for Visit { peer, reached } in visits {
            let on = wanted(&peer.name);
            let done = match reached {
                Some((mut conn, _)) => {
                    let outcome = if peer.acking == Some(on) {
                        Ok(())
                    } else {
                        set_acking(&mut conn, on, dialect).await
                    };
                    drop(conn.disconnect().await);
                    outcome
                }
                None => Err("not reachable".to_owned()),
            };
            match done {
                Ok(()) => {
                    tracing::info!(member = %self.settings.name, replica = %peer.name, acknowledges = on, "semi-synchronous replica side set")
                }
                Err(e) => failures.push(format!("{}: {e}", peer.name)),
            }
        }
        if wait {
            sql::run(&mut session, &self.acknowledgements()).await.map_err(fail)?;
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(DbError::new(action, format!("replicas not set: {}", failures.join("; "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, acking: Option<bool>) -> Peer {
        Peer { name: name.into(), acking, received: Some(7) }
    }

    const ON: Master = Master { enabled: true, waiting: true, clients: 1 };

    fn first(names: &[&str]) -> SyncRule {
        SyncRule::First { count: 1, names: names.iter().map(|n| n.to_string()).collect() }
    }

    #[test]
    fn the_rule_holds_while_the_named_replica_alone_acknowledges() {
        let (links, rule) =
            links_and_rule(ON, &[peer("a", Some(true)), peer("b", Some(false))], &first(&["a"]));
        assert_eq!(rule, first(&["a"]));
        assert!(links[0].synchronous && !links[1].synchronous);
        assert_eq!(links[0].flushed, Some(Position::new(Unit::Transactions, 7)));
    }

    #[test]
    fn a_replica_acknowledging_unnamed_or_unseen_leaves_the_rule_without_names() {
        let stray = links_and_rule(ON, &[peer("a", Some(true)), peer("b", Some(true))], &first(&["a"]));
        assert_eq!(stray.1, first(&[]));
        assert!(stray.0.iter().all(|l| !l.synchronous));
        // b could not be asked, and the server counts two acknowledging replicas.
        let two = Master { clients: 2, ..ON };
        let unseen = links_and_rule(two, &[peer("a", Some(true)), peer("b", None)], &first(&["a"]));
        assert_eq!(unseen.1, first(&[]));
        // The named replica restarted: its replica side is off again.
        let restarted =
            links_and_rule(Master { clients: 0, ..ON }, &[peer("a", Some(false))], &first(&["a"]));
        assert_eq!(restarted.1, first(&[]));
    }

    #[test]
    fn commits_that_do_not_wait_are_asynchronous_whatever_was_set() {
        let off = Master { enabled: false, waiting: false, clients: 0 };
        assert_eq!(links_and_rule(off, &[peer("a", Some(true))], &first(&["a"])).1, SyncRule::Off);
        let fell_back = Master { waiting: false, ..ON };
        assert_eq!(links_and_rule(fell_back, &[peer("a", Some(true))], &first(&["a"])).1, SyncRule::Off);
    }

    #[test]
    fn waiting_commits_with_no_rule_set_wait_for_any_replica() {
        let (links, rule) = links_and_rule(ON, &[peer("a", Some(true))], &SyncRule::Off);
        assert_eq!(rule, SyncRule::AnyReplica);
        assert!(links[0].synchronous);
        let quorum = SyncRule::Any { count: 1, names: vec!["a".into(), "b".into()] };
        let (_, rule) = links_and_rule(
            Master { clients: 2, ..ON },
            &[peer("a", Some(true)), peer("b", Some(true))],
            &quorum,
        );
        assert_eq!(rule, quorum);
    }
}
