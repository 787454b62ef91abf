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
    /// Print the cluster's event log: lease grants and losses, fences, promotions, switchovers, rejoins.
    Events(EventsArgs),
    /// Print a libpq connection string (`host=... port=...`) for a member.
    Dsn(DsnArgs),
    /// Restart members' databases in their current role (no member named: every member).
    Restart(RestartArgs),
    /// Make members' agents re-read their configuration file (tags and postgresql.parameters apply at once).
    Reload(ReloadArgs),
    /// Rebuild replicas: remove their data and clone them again from the primary.
    Reinit(ReinitArgs),
    /// Cancel members' scheduled restarts, or the cluster's scheduled switchover.
    Flush(FlushArgs),
    /// Run SQL on a member's database and print the rows.
    Query(QueryArgs),
    /// Print this program's version and, given the cluster's name, every member's.
    Version(VersionArgs),
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

impl CtlCommand {
    /// The command's connection arguments (`None` for `completions`).
    pub fn connect_mut(&mut self) -> Option<&mut ConnectArgs> {
        Some(match self {
            CtlCommand::List(a) => &mut a.connect,
            CtlCommand::Topology(a) => &mut a.connect,
            CtlCommand::Switchover(a) => &mut a.connect,
            CtlCommand::Failover(a) => &mut a.connect,
            CtlCommand::Pause(a) | CtlCommand::Resume(a) => &mut a.connect,
            CtlCommand::ShowConfig(a) => &mut a.connect,
            CtlCommand::EditConfig(a) => &mut a.connect,
            CtlCommand::History(a) => &mut a.connect,
            CtlCommand::Events(a) => &mut a.connect,
            CtlCommand::Dsn(a) => &mut a.connect,
            CtlCommand::Restart(a) => &mut a.targets.connect,
            CtlCommand::Reload(a) => &mut a.targets.connect,
            CtlCommand::Reinit(a) => &mut a.targets.connect,
            CtlCommand::Flush(a) => &mut a.targets.connect,
            CtlCommand::Query(a) => &mut a.connect,
            CtlCommand::Version(a) => &mut a.connect,
            CtlCommand::DemoteCluster(a) => &mut a.connect,
            CtlCommand::PromoteCluster(a) => &mut a.connect,
            CtlCommand::Members(
                MembersCommand::List(MembersListArgs { connect, .. })
                | MembersCommand::Add(MembersAddArgs { connect, .. })
                | MembersCommand::Remove(MemberChangeArgs { connect, .. })
                | MembersCommand::Promote(MemberChangeArgs { connect, .. }),
            ) => connect,
            CtlCommand::Completions(_) => return None,
        })
    }
}

/// `vigil demote-cluster`.
#[derive(Debug, Clone, Args)]
pub struct DemoteClusterArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
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
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
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
    /// A configuration file: an agent's, or a ctl-only one (`ctl`, `restapi`, `scope`) [env:
    /// VIGIL_CTL_CONFIG_FILE, PATRONICTL_CONFIG_FILE].
    #[arg(short = 'c', long = "config", visible_alias = "config-file", value_name = "FILE")]
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
    /// HTTPS settings.
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl ConnectArgs {
    /// Fills what these arguments leave out from the options given before the subcommand.
    pub fn inherit(&mut self, global: &GlobalArgs) {
        if self.config.is_none() {
            self.config.clone_from(&global.config_file);
        }
        self.tls.inherit(&global.tls);
    }
}

/// How to speak HTTPS to the agents; each overrides the configuration file's `ctl` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct TlsArgs {
    /// Do not check the agents' certificates (ctl.insecure).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// CA certificates (PEM) to check the agents' certificates with (ctl.cacert).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// A client certificate (PEM) to show (ctl.certfile).
    #[arg(long = "cert", value_name = "FILE")]
    pub certfile: Option<PathBuf>,
    /// The client certificate's private key (PEM), when not inside --cert (ctl.keyfile).
    #[arg(long = "key", value_name = "FILE", requires = "certfile")]
    pub keyfile: Option<PathBuf>,
}

impl TlsArgs {
    /// Fills what these arguments leave out from `other` (a key only with its certificate).
    fn inherit(&mut self, other: &TlsArgs) {
        self.insecure |= other.insecure;
        if self.cacert.is_none() {
            self.cacert.clone_from(&other.cacert);
        }
        if self.certfile.is_none() {
            // --key requires --cert: without a certificate here, there is no key here either.
            self.certfile.clone_from(&other.certfile);
            self.keyfile.clone_from(&other.keyfile);
        }
    }

    /// Whether any is given: the agents then speak HTTPS.
    pub fn any(&self) -> bool {
        self.insecure || self.cacert.is_some() || self.certfile.is_some()
    }
}

/// The options the control commands take before the subcommand, as patronictl's
/// (`vigil -c FILE list`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct GlobalArgs {
    /// The control commands' configuration file (as each command's -c) [env: VIGIL_CTL_CONFIG_FILE,
    /// PATRONICTL_CONFIG_FILE].
    #[arg(short = 'c', long = "config-file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// HTTPS settings.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// The arguments of commands that need nothing but the connection.
#[derive(Debug, Clone, Args)]
pub struct ConnectOnly {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
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
    /// The refresh interval, if watching (`-w` wins over `-W`); an error for a `-w` that is not a
    /// positive number of seconds.
    pub fn interval(&self) -> Result<Option<std::time::Duration>, String> {
        let Some(secs) = self.watch.or(self.every_two_seconds.then_some(2.0)) else { return Ok(None) };
        let interval = std::time::Duration::try_from_secs_f64(secs).ok().filter(|d| !d.is_zero());
        interval.map(Some).ok_or_else(|| format!("-w {secs}: give a positive number of seconds"))
    }
}

/// `vigil list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
    /// Also show the Tags column when no member has tags.
    #[arg(short = 'e', long)]
    pub extended: bool,
    /// Print a timestamp line before the table.
    #[arg(short = 't', long)]
    pub timestamp: bool,
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
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
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
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
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
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
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
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
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
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
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
    /// Do not show the changes.
    #[arg(short = 'q', long)]
    pub quiet: bool,
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
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
}

/// `vigil events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Keep printing new events until interrupted (Ctrl-C).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N events.
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Only the events after this event id, or from this time (ISO 8601 with a timezone) on.
    #[arg(long, value_name = "ID|TIME")]
    pub since: Option<String>,
    /// Output format (following: one JSON object, or YAML list item, per event).
    #[arg(long = "format", value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
}

/// One member, by role or by name (`vigil dsn`, `vigil query`).
#[derive(Debug, Clone, Default, Args)]
pub struct MemberPick {
    /// A member with this role (default: the leader).
    #[arg(short = 'r', long, value_enum, conflicts_with = "member")]
    pub role: Option<MemberRole>,
    /// This member.
    #[arg(short = 'm', long, value_name = "MEMBER")]
    pub member: Option<String>,
}

/// `vigil dsn`.
#[derive(Debug, Clone, Args)]
pub struct DsnArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Which member.
    #[command(flatten)]
    pub pick: MemberPick,
}

/// `vigil completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A member's role, as `-r/--role` names it (patronictl's choices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MemberRole {
    /// The leader: the primary, or a standby cluster's standby leader.
    Leader,
    /// The primary (not a standby leader).
    #[value(alias = "master")]
    Primary,
    /// A standby cluster's standby leader.
    StandbyLeader,
    /// A replica (any member that is not the leader).
    #[value(alias = "standby")]
    Replica,
    /// Any member.
    Any,
}

/// The members a command acts on: `[CLUSTER] [MEMBER...]`, `--force`.
#[derive(Debug, Clone, Args)]
pub struct Targets {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The cluster's name (optional when the first name is a member's), then the members; no member
    /// named: every member (that has the role asked for).
    #[arg(value_name = "CLUSTER|MEMBER")]
    pub names: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// `vigil restart`.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// The cluster and members.
    #[command(flatten)]
    pub targets: Targets,
    /// Only the members with this role.
    #[arg(short = 'r', long, value_enum, default_value_t = MemberRole::Any)]
    pub role: MemberRole,
    /// Restart one of the chosen members, picked at random.
    #[arg(long)]
    pub any: bool,
    /// Only the members where a changed parameter waits for a restart.
    #[arg(long)]
    pub pending: bool,
    /// When to restart (ISO 8601 timestamp with a timezone), instead of now.
    #[arg(long, value_name = "TIMESTAMP")]
    pub scheduled: Option<String>,
    /// Only if the member's PostgreSQL version is lower than this one (e.g. 15.8).
    #[arg(long, value_name = "VERSION", value_parser = parse_pg_version)]
    pub pg_version: Option<String>,
    /// How long the database may take to start again, in seconds (the agent's default when left out).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u32>,
}

/// `vigil reload`.
#[derive(Debug, Clone, Args)]
pub struct ReloadArgs {
    /// The cluster and members.
    #[command(flatten)]
    pub targets: Targets,
    /// Only the members with this role.
    #[arg(short = 'r', long, value_enum, default_value_t = MemberRole::Any)]
    pub role: MemberRole,
}

/// `vigil reinit`.
#[derive(Debug, Clone, Args)]
pub struct ReinitArgs {
    /// The cluster and members (replicas only).
    #[command(flatten)]
    pub targets: Targets,
    /// Wait until every member named has finished (up to an hour).
    #[arg(long)]
    pub wait: bool,
    /// Clone from the leader (the only source so far; accepted as patronictl's).
    #[arg(long)]
    pub from_leader: bool,
}

/// What `vigil flush` cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushTarget {
    /// The members' scheduled restarts (`DELETE /restart`).
    Restart,
    /// The cluster's scheduled switchover (`DELETE /switchover`).
    Switchover,
}

/// `vigil flush`.
#[derive(Debug, Clone, Args)]
#[command(override_usage = "vigil flush [OPTIONS] [CLUSTER] [MEMBER]... <restart|switchover>")]
#[command(mut_arg("names", |a| a
    .value_name("CLUSTER|MEMBER|WHAT")
    .help("The cluster's name, members (restarts; none named: every member with the role), then what to \
           cancel: restart or switchover")))]
pub struct FlushArgs {
    /// The cluster and members (restarts), then what to cancel: `restart` or `switchover` (as
    /// patronictl's `flush CLUSTER [MEMBER...] restart|switchover`).
    #[command(flatten)]
    pub targets: Targets,
    /// Only the members with this role (restarts).
    #[arg(short = 'r', long, value_enum, default_value_t = MemberRole::Any)]
    pub role: MemberRole,
}

impl FlushArgs {
    /// What to cancel (the last name), and the members (the names before it).
    pub fn split(mut self) -> Result<(FlushTarget, Targets), String> {
        let last = self.targets.names.pop().ok_or("flush what? Give restart or switchover, last")?;
        let target = FlushTarget::from_str(&last, false)
            .map_err(|_| format!("flush {last}: the last argument must be restart or switchover"))?;
        Ok((target, self.targets))
    }
}

/// `vigil query`.
#[derive(Debug, Clone, Args)]
#[command(mut_arg("config", |a| a.short(None)))]
#[command(mut_arg("username", |a| a.long("api-username")))]
#[command(mut_arg("password", |a| a.long("api-password")))]
pub struct QueryArgs {
    /// Where the cluster is (here -c is the SQL: the file is --config or -c before the subcommand;
    /// the REST API's credentials are --api-username/--api-password).
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The cluster's name (its scope): the command refuses to act on a cluster with another name.
    #[arg(value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Which member.
    #[command(flatten)]
    pub pick: MemberPick,
    /// The SQL to run.
    #[arg(short = 'c', long, value_name = "SQL", conflicts_with = "file", required_unless_present = "file")]
    pub command: Option<String>,
    /// Run the SQL in FILE (`-` for stdin).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The database (default: postgres).
    #[arg(short = 'd', long, value_name = "NAME")]
    pub dbname: Option<String>,
    /// The database user [env: PGUSER; default: postgres].
    #[arg(id = "db_user", short = 'U', long = "username", value_name = "NAME")]
    pub db_user: Option<String>,
    /// Ask for the database password (else PGPASSWORD, if set).
    #[arg(id = "db_password", long = "password")]
    pub db_password: bool,
    /// Output format.
    #[arg(long = "format", value_enum, default_value_t = Format::Tsv)]
    pub format: Format,
    /// Run it again.
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// `vigil version`.
#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The cluster's name: its members' versions are printed too; then members (default: all).
    #[arg(value_name = "CLUSTER [MEMBER]")]
    pub names: Vec<String>,
}

/// A PostgreSQL version as `--pg-version` takes it: `major.minor` (10 and later) or `9.x.y`.
fn parse_pg_version(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split('.').collect();
    let numeric = parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let fits = match parts.first().and_then(|p| p.parse::<u32>().ok()) {
        Some(9) => parts.len() == 3 || parts.len() == 2,
        Some(major) if major >= 10 => parts.len() <= 2,
        _ => false,
    };
    if numeric && fits {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not a PostgreSQL version (e.g. 15.8, 9.6.24)"))
    }
}
