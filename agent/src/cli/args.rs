//! The control commands' arguments (clap), flattened into the `vigil` binary's subcommands.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use vigil_api::Secret;

/// The control commands, mirroring patronictl. They talk only to the agents' REST API.
#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// List the cluster's members: role, state, timeline, positions and lag (patronictl list).
    List(ListArgs),
    /// The members as a tree: replicas indented under the member they stream from.
    Topology(TopologyArgs),
    /// Hand the primary role over to a replica, gracefully.
    Switchover(SwitchoverArgs),
    /// Promote a named replica (also when there is no leader).
    Failover(FailoverArgs),
    /// Put the cluster in maintenance mode: the agents take no automatic action.
    Pause(PauseArgs),
    /// Leave maintenance mode.
    Resume(PauseArgs),
    /// Print the cluster's dynamic configuration as YAML.
    ShowConfig(ConnectOnly),
    /// Change the cluster's dynamic configuration: with -s/-p, or in $EDITOR.
    EditConfig(EditConfigArgs),
    /// List the cluster's promotions: timeline, position, reason, new leader, fencing token.
    History(HistoryArgs),
    /// Print a libpq connection string (`host=... port=...`) for a member.
    Dsn(DsnArgs),
    /// Restart a member's database in its current role.
    Restart(MemberOpArgs),
    /// Make a member's agent re-read its configuration file (tags and postgresql.parameters apply at once).
    Reload(MemberOpArgs),
    /// Rebuild a replica: remove its data and clone it again from the primary.
    Reinit(MemberOpArgs),
    /// Make this cluster a standby cluster: its leader replicates from another cluster's primary.
    DemoteCluster(DemoteClusterArgs),
    /// Make a standby cluster a cluster of its own: its standby leader is promoted.
    PromoteCluster(PromoteClusterArgs),
    /// The Raft group's members: list, add, remove, promote (etcd's `member` commands).
    #[command(subcommand)]
    Members(MembersCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// `vigil demote-cluster`.
#[derive(Debug, Clone, Args)]
pub struct DemoteClusterArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The other cluster's primary (or a proxy in front of it).
    #[arg(long)]
    pub host: String,
    /// Its port.
    #[arg(long, default_value_t = 5432)]
    pub port: u16,
    /// A replication slot to stream through there.
    #[arg(long)]
    pub primary_slot_name: Option<String>,
}

/// `vigil promote-cluster`.
#[derive(Debug, Clone, Args)]
pub struct PromoteClusterArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `vigil members …`.
#[derive(Debug, Clone, Subcommand)]
pub enum MembersCommand {
    /// List the Raft group's nodes: id, name, address, voter or learner, witness, Raft leader, lag.
    List(MembersListArgs),
    /// Add a node by its Raft address before starting it; it joins as a learner, then becomes a voter.
    Add(MembersAddArgs),
    /// Remove a node (refused if the voters left could not form a quorum, or it is the primary).
    Remove(MemberChangeArgs),
    /// Make a caught-up learner a voter.
    Promote(MemberChangeArgs),
}

/// `vigil members list`.
#[derive(Debug, Clone, Args)]
pub struct MembersListArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
}

/// `vigil members add`.
#[derive(Debug, Clone, Args)]
pub struct MembersAddArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The new node's Raft address (its `raft.self_addr`), `host:port`.
    pub raft_addr: String,
}

/// `vigil members remove` and `vigil members promote`.
#[derive(Debug, Clone, Args)]
pub struct MemberChangeArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The member: its name, node id or Raft address.
    pub member: String,
    /// Accept an even number of voters (it tolerates no more failures than one fewer).
    #[arg(long)]
    pub force: bool,
}

/// Where the cluster is and how to authenticate (every control command takes these).
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// An agent's configuration file: its REST API is `restapi.connect_address`, its credentials
    /// `restapi.authentication`.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An agent's REST API, e.g. http://127.0.0.1:8008 (several: comma-separated) [env: VIGIL_API].
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// User name for the REST API's basic auth [env: VIGIL_API_USERNAME].
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// Password for the REST API's basic auth [env: VIGIL_API_PASSWORD].
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<Secret>,
}

/// The arguments of commands that need nothing but the connection.
#[derive(Debug, Clone, Args)]
pub struct ConnectOnly {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// How tables are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// A boxed table, as patronictl prints it.
    #[default]
    Pretty,
    /// Tab-separated values with a header line.
    Tsv,
    /// A JSON array of objects.
    Json,
    /// A YAML list of mappings.
    #[value(alias = "yml")]
    Yaml,
}

/// `-W` / `-w SECS`: print again and again.
#[derive(Debug, Clone, Default, Args)]
pub struct WatchArgs {
    /// Print again every 2 seconds, until Ctrl-C.
    #[arg(short = 'W')]
    pub every_two_seconds: bool,
    /// Print again every SECS seconds, until Ctrl-C.
    #[arg(short = 'w', long = "watch", value_name = "SECS")]
    pub watch: Option<f64>,
}

impl WatchArgs {
    /// The refresh interval in seconds, if watching (`-w` wins over `-W`).
    pub fn interval(&self) -> Option<f64> {
        self.watch.or(self.every_two_seconds.then_some(2.0))
    }
}

/// `vigil list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
    /// Also show the Tags column when no member has tags.
    #[arg(short = 'e', long)]
    pub extended: bool,
    /// Refresh.
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// `vigil topology`.
#[derive(Debug, Clone, Args)]
pub struct TopologyArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Refresh.
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// `vigil switchover`.
#[derive(Debug, Clone, Args)]
pub struct SwitchoverArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The current leader (checked; default: the leader the cluster reports).
    #[arg(long, alias = "primary", value_name = "MEMBER")]
    pub leader: Option<String>,
    /// The member to promote (default: the agents pick the best replica).
    #[arg(long, value_name = "MEMBER")]
    pub candidate: Option<String>,
    /// When to switch over (ISO 8601 timestamp, or `now`), passed to the agent.
    #[arg(long, value_name = "TIMESTAMP")]
    pub scheduled: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// `vigil failover`.
#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The member to promote.
    #[arg(long, value_name = "MEMBER")]
    pub candidate: String,
    /// Promote it even if it cannot be shown to hold every acknowledged commit (synchronous mode) or
    /// lags beyond maximum_lag_on_failover; recorded in the history.
    #[arg(long)]
    pub allow_data_loss: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// `vigil pause` and `vigil resume`.
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Wait (up to 30 s) until every member reports the new state.
    #[arg(long)]
    pub wait: bool,
}

/// `vigil edit-config`.
#[derive(Debug, Clone, Args)]
pub struct EditConfigArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Set `key=value` (nested keys with dots, e.g. `postgresql.use_pg_rewind=false`; the value is
    /// YAML; an empty value or `null` removes the key).
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Set the PostgreSQL parameter `name=value` (`postgresql.parameters.name`).
    #[arg(short = 'p', long = "pg", value_name = "NAME=VALUE")]
    pub pg: Vec<String>,
    /// Merge the YAML in FILE (`-` for stdin) into the configuration.
    #[arg(long, value_name = "FILE", conflicts_with = "replace")]
    pub apply: Option<PathBuf>,
    /// Replace the configuration with the YAML in FILE (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub replace: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// `vigil history`.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
}

/// Which member `vigil dsn` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DsnRole {
    /// The leader.
    #[value(alias = "leader", alias = "master")]
    Primary,
    /// A replica.
    Replica,
    /// Any member.
    Any,
}

/// `vigil dsn`.
#[derive(Debug, Clone, Args)]
pub struct DsnArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// A member with this role (default: primary).
    #[arg(short = 'r', long, value_enum, conflicts_with = "member")]
    pub role: Option<DsnRole>,
    /// This member.
    #[arg(short = 'm', long, value_name = "MEMBER")]
    pub member: Option<String>,
}

/// `vigil completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `vigil restart`, `vigil reload`, `vigil reinit`.
#[derive(Debug, Clone, Args)]
pub struct MemberOpArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The member.
    pub member: String,
    /// restart only: only if the member has this role.
    #[arg(long, value_parser = ["primary", "replica"])]
    pub role: Option<String>,
    /// restart only: only if a changed parameter waits for a restart.
    #[arg(long)]
    pub pending: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}
