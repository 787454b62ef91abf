//! The nemeses: real faults against real processes and links, each healed after its hold time.

use crate::agents::AgentCluster;
use crate::netns::{Direction, Topology};

/// A kind of fault. Targets are picked relative to the primary at the time of the fault, with a plan's
/// salt: a node fault hits the primary two times in three, else a replica. The "postgres" kinds hit the
/// node's database server whichever the engine (MariaDB's `mariadbd`); their names stay those of the
/// soaks' reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// kill -9 of the agent and its database server; the agent is started again when healed.
    KillNode,
    /// kill -9 of the agent only; started again when healed.
    KillAgent,
    /// kill -9 of the database server only (its agent restarts it).
    KillPostgres,
    /// SIGSTOP of the agent; SIGCONT when healed.
    PauseAgent,
    /// SIGSTOP of the database server's process group (postmaster and backends, or `mariadbd`); SIGCONT
    /// when healed.
    PausePostgres,
    /// The primary cannot reach the other nodes nor they it (nftables); the clients still reach it.
    IsolatePrimary,
    /// The primary's link to the bridge is down: nobody reaches it, clients included, and no RST tells
    /// anyone (a failed switch port, NIC or zone link).
    CutPrimary,
    /// A replica's link to the bridge is down: nobody reaches it.
    IsolateReplica,
    /// The nodes split into a minority and a majority (nftables), the clients on a random side.
    Split,
    /// One direction between a node and its peers is dropped (incoming or outgoing, by the salt).
    Asymmetric,
    /// A node's link is throttled to 256 kbit/s with up to 500 ms of queueing each way.
    SlowLink,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 11] = [
        Kind::KillNode,
        Kind::KillAgent,
        Kind::KillPostgres,
        Kind::PauseAgent,
        Kind::PausePostgres,
        Kind::IsolatePrimary,
        Kind::CutPrimary,
        Kind::IsolateReplica,
        Kind::Split,
        Kind::Asymmetric,
        Kind::SlowLink,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::KillNode => "kill-node",
            Kind::KillAgent => "kill-agent",
            Kind::KillPostgres => "kill-postgres",
            Kind::PauseAgent => "pause-agent",
            Kind::PausePostgres => "pause-postgres",
            Kind::IsolatePrimary => "isolate-primary",
            Kind::CutPrimary => "cut-primary",
            Kind::IsolateReplica => "isolate-replica",
            Kind::Split => "split",
            Kind::Asymmetric => "asymmetric",
            Kind::SlowLink => "slow-link",
        }
    }

    /// The kind named `name` (as in reports).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name.trim())
    }

    /// Whether this kind, held long enough against the primary, should move the primary: it kills the
    /// primary's agent, hangs its server or cuts it from the majority. (Killing the server alone is
    /// repaired in place; a frozen agent whose server still streams must not be replaced; a slow link is
    /// no loss.)
    pub fn moves_primary(self) -> bool {
        matches!(
            self,
            Kind::KillNode
                | Kind::KillAgent
                | Kind::PausePostgres
                | Kind::IsolatePrimary
                | Kind::CutPrimary
                | Kind::Split
                | Kind::Asymmetric
        )
    }

    /// Whether a short blip of this kind should leave the primary in place (it neither kills nor
    /// restarts anything): a failover after a 0.5 s one is a false failover.
    pub fn is_blip(self) -> bool {
        !matches!(self, Kind::KillNode | Kind::KillAgent | Kind::KillPostgres)
    }
}

/// What healing a fault takes.
#[derive(Debug)]
enum Heal {
    /// Start node i's agent again.
    StartAgent(usize),
    /// SIGCONT to node i's agent.
    ContinueAgent(usize),
    /// SIGCONT to a process group.
    ContinueGroup(libc::pid_t),
    /// Links up and rules gone.
    Network,
    /// Nothing (the agent heals it).
    Nothing,
}

/// A fault in place.
#[derive(Debug)]
pub struct Fault {
    /// Its kind.
    pub kind: Kind,
    /// What it is, for reports (`isolate-primary node2`).
    pub what: String,
    /// Whether it hit the primary: its target was the primary, or (split) the primary is in the
    /// minority.
    pub hit_primary: bool,
    heal: Heal,
}

impl Fault {
    /// Whether it should move the primary if held long enough ([`Kind::moves_primary`] and it hit the
    /// primary).
    pub fn moves_primary(&self) -> bool {
        self.hit_primary && self.kind.moves_primary()
    }
}

/// Applies `kind` with `salt` to the cluster whose primary is node `primary`.
pub fn apply(
    kind: Kind,
    salt: u64,
    primary: usize,
    cluster: &mut AgentCluster,
    net: &Topology,
) -> Result<Fault, String> {
    let n = cluster.nodes.len();
    let replica = |k: u64| (primary + 1 + (k as usize) % (n - 1)) % n;
    let node = if salt.is_multiple_of(3) { replica(salt / 3) } else { primary };
    let others = |i: usize| -> Vec<String> { (0..n).filter(|j| *j != i).map(|j| net.node_addr(j)).collect() };
    let names: Vec<String> = cluster.nodes.iter().map(|node| node.name.clone()).collect();
    let what = |target: usize| format!("{} {}", kind.name(), names[target]);
    let (what, hit_primary, heal) = match kind {
        Kind::KillNode => {
            cluster.signal_agent(node, libc::SIGKILL);
            cluster.kill_server(node);
            (what(node), node == primary, Heal::StartAgent(node))
        }
        Kind::KillAgent => {
            cluster.signal_agent(node, libc::SIGKILL);
            (what(node), node == primary, Heal::StartAgent(node))
        }
        Kind::KillPostgres => {
            cluster.kill_server(node);
            (what(node), node == primary, Heal::Nothing)
        }
        Kind::PauseAgent => {
            cluster.signal_agent(node, libc::SIGSTOP);
            (what(node), node == primary, Heal::ContinueAgent(node))
        }
        Kind::PausePostgres => {
            let pid = cluster.server_pid(node).ok_or(format!("{}: no database server", what(node)))?;
            // pg_ctl makes the postmaster a session (and group) leader, its backends are in its group;
            // the MariaDB adapter starts `mariadbd` in a group of its own.
            // SAFETY: getpgid(2) has no memory-safety preconditions.
            let group = unsafe { libc::getpgid(pid) };
            if group != pid {
                return Err(format!("{}: server {pid} leads no process group ({group})", what(node)));
            }
            cluster.signal_pid(-group, libc::SIGSTOP);
            (what(node), node == primary, Heal::ContinueGroup(group))
        }
        Kind::IsolatePrimary => {
            net.drop_traffic(&net.node_ns(primary), &others(primary), Direction::Both)?;
            (what(primary), true, Heal::Network)
        }
        Kind::CutPrimary => {
            net.set_link(primary, false)?;
            (what(primary), true, Heal::Network)
        }
        Kind::IsolateReplica => {
            let r = replica(salt);
            net.set_link(r, false)?;
            (what(r), false, Heal::Network)
        }
        Kind::Split => {
            let mut order: Vec<usize> = (0..n).collect();
            super::rng::Rng::new(salt).shuffle(&mut order);
            let (minority, majority) = order.split_at(n / 2);
            let addrs = |side: &[usize]| -> Vec<String> { side.iter().map(|i| net.node_addr(*i)).collect() };
            for i in minority {
                net.drop_traffic(&net.node_ns(*i), &addrs(majority), Direction::Both)?;
            }
            let clients_with_minority = salt.is_multiple_of(2);
            let away = if clients_with_minority { majority } else { minority };
            net.drop_traffic(&net.client_ns(), &addrs(away), Direction::Both)?;
            let side_names =
                |side: &[usize]| -> Vec<&str> { side.iter().map(|i| names[*i].as_str()).collect() };
            let side = if clients_with_minority { "minority" } else { "majority" };
            let what = format!(
                "split {:?} | {:?}, clients with the {side}",
                side_names(minority),
                side_names(majority)
            );
            (what, minority.contains(&primary), Heal::Network)
        }
        Kind::Asymmetric => {
            let direction = if salt.is_multiple_of(2) { Direction::Incoming } else { Direction::Outgoing };
            net.drop_traffic(&net.node_ns(node), &others(node), direction)?;
            (format!("{} ({direction:?} dropped)", what(node)), node == primary, Heal::Network)
        }
        Kind::SlowLink => {
            net.slow_link(node)?;
            (what(node), node == primary, Heal::Network)
        }
    };
    Ok(Fault { kind, what, hit_primary, heal })
}

/// Heals `fault`.
pub fn heal(fault: Fault, cluster: &mut AgentCluster, net: &Topology) -> Result<(), String> {
    match fault.heal {
        Heal::StartAgent(i) => cluster.start_agent(i),
        Heal::ContinueAgent(i) => cluster.signal_agent(i, libc::SIGCONT),
        Heal::ContinueGroup(group) => {
            cluster.signal_pid(-group, libc::SIGCONT);
        }
        Heal::Network => net.heal()?,
        Heal::Nothing => {}
    }
    Ok(())
}
