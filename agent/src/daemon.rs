//! `vigil agent`: one member's store node, REST API and HA loop, until SIGTERM or Ctrl-C.

use crate::config::{Config, EngineConfig};
use crate::db::lifeline::{Lifeline, PeerAccess};
use crate::db::mariadb::{MariaDb, MariaDbSettings};
use crate::db::postgres::{Postgres, PostgresSettings};
use crate::db::{Database, Engine};
use crate::ha::{identity_tags, Agent, Commands, Identity, LocalCommand, RoleGuard};
use crate::kubernetes::{spawn_labeler, PodLabels};
use crate::management::AgentManagement;
use crate::raft_entry;
use crate::status::SharedStatus;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use vigil_dcs::DcsNode;

/// Runs the agent described by `config` until the process is asked to stop; `Err` says what kept it
/// from starting.
pub async fn run(config: Config, config_path: Option<&Path>) -> Result<(), String> {
    let (commands, command_queue) = Commands::channel();
    let hangups = reload_on_hangup(commands.clone())?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    config.check_os_user(root).map_err(|e| e.to_string())?;
    let dynamic = config.bootstrap.dcs.clone();
    if config.restapi.unprotected() {
        tracing::warn!(
            listen = %config.restapi.listen,
            "restapi.insecure: anyone who can reach the REST API may make management calls (switchover, \
             restart, config changes); set restapi.authentication, restapi.verify_client or restapi.allowlist"
        );
    }

    let entry = raft_entry::enter(&config).await?;
    let mut dcs_config = raft_entry::dcs_config(&config, &entry);
    // Until the first read of the store; the HA loop then sets the stored retry_timeout every cycle.
    dcs_config.op_timeout = dynamic.lease_timing().retry_timeout;
    warn_if_unauthenticated(&config);
    let raft_addr = config.raft.bind_addr.as_ref().unwrap_or(&config.raft.self_addr).to_string();
    // The files were read when the configuration was; read again here, they may have changed since.
    let tls = config
        .api_server_tls()
        .map(|t| vigil_api::tls::server_config(&t, "restapi"))
        .transpose()
        .map_err(|e| e.to_string())?;
    let raft_listener = bind(&raft_addr, "raft.self_addr").await?;
    let api_listener = bind(&config.restapi.listen.to_string(), "restapi.listen").await?;

    let dcs = Arc::new(DcsNode::start(dcs_config).await.map_err(|e| e.to_string())?);
    let raft_server = tokio::spawn(vigil_api::tls::serve(raft_listener, dcs.router(), dcs.tls()));
    // A node that joined an existing group never forms one (the store remembers it joined).
    dcs.form(&config.raft_members()).await.map_err(|e| e.to_string())?;
    let settler = {
        let (dcs, config) = (dcs.clone(), config.clone());
        tokio::spawn(async move { raft_entry::settle(dcs, &config).await })
    };

    let status = Arc::new(SharedStatus::default());
    let management = AgentManagement::new(dcs.clone(), config.scope.clone(), dynamic.clone(), commands);
    let management: Arc<dyn vigil_api::Management> = Arc::new(management);
    let lifeline = lifeline(&config, dcs.incarnation());
    let mariadb = MariaDbSettings::from_config(&config)
        .map(|settings| Arc::new(MariaDb::new(settings).with_lifeline(lifeline.clone())));
    let api = vigil_api::router(status.clone()).merge(vigil_api::management_router(management.clone()));
    let mut api = vigil_api::auth::require_credentials(api, config.restapi.credentials());
    if let (Some(db), Some(my)) = (&mariadb, &config.mysql) {
        let account = my.authentication.replication.basic_auth();
        api = api.merge(vigil_api::backup::backup_router(db.clone(), account));
    }
    if let Some(allowlist) = allowlist(&config).await? {
        api = vigil_api::allowlist::restrict(api, allowlist, management);
    }
    if tls.is_some() && config.restapi.verifies_clients() {
        api = vigil_api::tls::require_client_cert(api);
    }
    let headers = config.restapi.response_headers(tls.is_some())?;
    let api = vigil_api::with_response_headers(api, headers);
    let api_server = tokio::spawn(vigil_api::tls::serve(api_listener, api, tls));
    let pods = PodLabels::from_config(&config)?.map(Arc::new);
    let labeler = pods.clone().map(|pods| spawn_labeler(pods, status.clone()));
    // A witness has no server in HAProxy: only members with a database push.
    let pushers = config.haproxy.as_ref().filter(|_| config.engine().is_some()).map(|haproxy| {
        let store = dcs.clone();
        let members: crate::haproxy::Members = Arc::new(move || {
            crate::ha::member_records(&store.local()).keys().map(|m| m.to_string()).collect()
        });
        crate::haproxy::Pushers::spawn(haproxy, config.name.as_str(), status.clone(), members)
    });
    let scaling = pods.clone();
    match config.engine() {
        None => {
            let who = (config.scope.as_str(), config.name.as_str());
            crate::witness::run(status, who, command_queue, stop_signal()).await;
        }
        Some(engine) => {
            let agent = AgentParts {
                identity: identity(&config, engine, config_path),
                dcs: dcs.clone(),
                status,
                config: &config,
                pods,
                lifeline: lifeline.clone(),
            };
            match engine {
                EngineConfig::Postgresql(_) => {
                    let settings =
                        PostgresSettings::from_config(&config, &dynamic).ok_or("no postgresql section")?;
                    let db = Postgres::new(settings).with_lifeline(lifeline);
                    agent.run(Arc::new(db), command_queue).await;
                }
                EngineConfig::Mysql(_) => {
                    let db = mariadb.ok_or("no mysql section")?;
                    agent.run(db, command_queue).await;
                }
            }
        }
    }

    // A pod beyond its StatefulSet's new replica count leaves the group: the group shrinks with it.
    let left = match scaling {
        Some(pods) if pods.scaled_away().await => raft_entry::leave(&dcs).await,
        _ => false,
    };
    if let Some(pushers) = pushers {
        pushers.stop().await;
    }
    settler.abort();
    hangups.abort();
    labeler.into_iter().for_each(|task| task.abort());
    for server in [api_server, raft_server] {
        server.abort();
        let _ = server.await;
    }
    match Arc::try_unwrap(dcs) {
        Ok(dcs) => dcs.shutdown().await,
        Err(_) => tracing::warn!("store node still in use at shutdown; leaving it to the process exit"),
    }
    if left {
        raft_entry::forget(&config.raft.data_dir);
    }
    tracing::info!(member = %config.name, "agent stopped");
    Ok(())
}

/// What the HA loop is made of besides its database adapter.
struct AgentParts<'a> {
    identity: Identity,
    dcs: Arc<DcsNode>,
    status: Arc<SharedStatus>,
    config: &'a Config,
    pods: Option<Arc<PodLabels>>,
    lifeline: Option<Lifeline>,
}

impl AgentParts<'_> {
    /// Runs the HA loop on `db` until the process is asked to stop.
    async fn run<D: Database>(
        self,
        db: Arc<D>,
        command_queue: tokio::sync::mpsc::Receiver<crate::ha::Envelope>,
    ) {
        let agent = Agent::new(self.identity, self.dcs, db, self.status)
            .with_guard(RoleGuard::from_config(self.config).with_pods(self.pods))
            .with_lifeline(self.lifeline);
        tracing::info!(member = %self.config.name, scope = %self.config.scope, "agent started");
        agent.run(stop_signal(), command_queue).await;
    }
}

/// The database's lifeline: it stops the server if this agent dies, and certifies the death to the peers.
fn lifeline(config: &Config, incarnation: u64) -> Option<Lifeline> {
    let engine = match config.engine()? {
        EngineConfig::Postgresql(_) => Engine::Postgresql,
        EngineConfig::Mysql(_) => Engine::Mariadb,
    };
    let lifeline = Lifeline::spawn(engine, config.engine()?.data_dir())
        .map_err(
            |e| tracing::error!(error = %e, "lifeline not started: the database would outlive this agent"),
        )
        .ok()?;
    let tls = config.api_client_tls();
    lifeline.tell_access(PeerAccess {
        member: config.name.to_string(),
        incarnation,
        auth: config
            .restapi
            .authentication
            .as_ref()
            .map(|a| (a.username.clone(), a.password.expose().to_owned())),
        cacert: tls.cacert,
        certfile: tls.certfile,
        keyfile: tls.keyfile,
        insecure: tls.insecure,
    });
    Some(lifeline)
}

fn identity(config: &Config, engine: EngineConfig<'_>, config_path: Option<&Path>) -> Identity {
    Identity {
        name: config.name.clone(),
        scope: config.scope.clone(),
        api_url: format!("{}://{}/patroni", config.api_scheme(), config.restapi.connect_address),
        db_host: engine.connect_address().host.clone(),
        db_port: engine.connect_address().port,
        tags: identity_tags(config),
        can_fail_over: config.tags.can_fail_over(),
        failover_priority: config.tags.configured_priority(),
        bootstrap_dcs: config.bootstrap.dcs.clone(),
        parameters: engine.parameters().clone(),
        use_pg_rewind: config.postgresql.as_ref().and_then(|pg| pg.use_pg_rewind),
        discard: crate::ha::discard(config),
        proxy_url: config
            .postgresql
            .as_ref()
            .and_then(|pg| pg.proxy_address.as_ref())
            .map(|a| <crate::db::postgres::Postgres as crate::db::Database>::connection_url(&a.host, a.port)),
        config_path: config_path.map(Path::to_owned),
        api_client_tls: config.api_client_tls(),
        api_read_auth: config.restapi.read_authentication.as_ref().map(|a| a.basic_auth()),
    }
}

/// `restapi.allowlist` with its host names resolved, when it or `allowlist_include_members` is set.
async fn allowlist(config: &Config) -> Result<Option<vigil_api::allowlist::Allowlist>, String> {
    let api = &config.restapi;
    if api.allowlist.is_empty() && !api.allowlist_include_members {
        return Ok(None);
    }
    let entries = api.allow_entries().map_err(|e| e.to_string())?;
    let networks = vigil_api::allowlist::resolve(&entries).await;
    tracing::info!(
        networks = networks.len(),
        include_members = api.allowlist_include_members,
        "management calls restricted by restapi.allowlist"
    );
    Ok(Some(vigil_api::allowlist::Allowlist { networks, include_members: api.allowlist_include_members }))
}

async fn bind(addr: &str, key: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))
}

/// Warns, at every start, of a group of several members whose Raft port takes requests from anyone who
/// reaches it (validation refused it unless on loopback addresses only or with `raft.insecure`).
fn warn_if_unauthenticated(config: &Config) {
    if !config.raft_unauthenticated() {
        return;
    }
    if config.raft_is_loopback() {
        tracing::warn!("the Raft port is unauthenticated (no raft.certfile nor raft.password): any local user can run the cluster");
    } else {
        tracing::warn!("raft.insecure: the Raft port is unauthenticated and reachable from other machines: anyone who reaches it can run the cluster");
    }
}

/// Re-reads the configuration file at each SIGHUP, as `POST /reload` does (Patroni's behaviour, and what
/// `systemctl reload` sends): the agent and its database keep running. Watching starts before the agent
/// does, so that a SIGHUP never takes the default action, which would end the agent.
fn reload_on_hangup(commands: Commands) -> Result<tokio::task::JoinHandle<()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the configuration");
            match commands.call(LocalCommand::Reload).await {
                Ok(done) => tracing::info!(result = %done, "SIGHUP reload done"),
                Err(e) => tracing::warn!(error = %e.message, "SIGHUP reload refused: nothing changed"),
            }
        }
    }))
}

/// Completes on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
