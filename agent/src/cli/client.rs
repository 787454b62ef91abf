//! Finding the cluster and calling it: the agents' REST API only. The first URLs come from `--api` /
//! `VIGIL_API` or the configuration file's `restapi.connect_address`; `GET /cluster` adds every member's.
//! A member that does not answer is reported on stderr and the next one is tried; an HTTP error is final
//! (the agent answered), reported with the agent's own message.

use super::args::ConnectArgs;
use super::ctl_file::CtlFile;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
pub use vigil_api::client::base_url;
use vigil_api::Secret;

/// How long to wait for a TCP connection to an agent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a read (`GET`) may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a configuration change may take.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a switchover or failover may take: the agent answers once the lease has moved (it waits up
/// to 30 s itself).
pub const SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(45);

/// Basic-auth credentials for the REST API's mutating calls (the password masked by `Debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// Where to find the cluster and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Agents' base URLs (`http://host:port`), in the order to try them.
    pub urls: Vec<String>,
    /// Credentials, if any.
    pub auth: Option<Auth>,
    /// HTTPS settings (the configuration file's `ctl`, falling back to `restapi`).
    pub tls: vigil_api::tls::ClientTls,
    /// The cluster's name the user expects (the CLUSTER argument, else the file's `scope`).
    pub scope: Option<String>,
}

/// The target from the arguments, the configuration file (already read, if one was named) and the
/// environment (`env` looks a variable up). URLs: `--api`, else the file's ([`CtlFile::urls`]), else
/// `VIGIL_API`. Credentials: `--username/--password`, else `VIGIL_API_USERNAME/PASSWORD`, else the
/// file's `ctl.authentication` or `restapi.authentication`. HTTPS: the flags, else the file's `ctl`
/// (falling back to `restapi`).
pub fn resolve(
    args: &ConnectArgs,
    cluster: Option<&str>,
    file: Option<&CtlFile>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, String> {
    let from_file = file.map(|f| f.urls(args.tls.any())).filter(|urls| !urls.is_empty());
    let urls: Vec<String> = match (&args.api, from_file, env("VIGIL_API")) {
        (Some(api), _, _) => split_urls(api),
        (None, Some(urls), _) => urls,
        (None, None, Some(api)) => split_urls(&api),
        (None, None, None) => Vec::new(),
    };
    if urls.is_empty() {
        return Err("where is the cluster? Give -c FILE (with restapi.connect_address or ctl.api), \
                    --api URL or VIGIL_API"
            .into());
    }
    let username = args.username.clone().or_else(|| env("VIGIL_API_USERNAME"));
    let password = args.password.clone().or_else(|| env("VIGIL_API_PASSWORD").map(Secret::from));
    let from_file = file.and_then(CtlFile::authentication);
    let auth = match (username, password, from_file) {
        (Some(username), password, _) => Some(Auth { username, password: password.unwrap_or_default() }),
        (None, Some(password), Some(file)) => Some(Auth { username: file.username.clone(), password }),
        (None, Some(_), None) => {
            return Err("a password was given without a user name (--username or VIGIL_API_USERNAME)".into())
        }
        (None, None, Some(file)) => {
            Some(Auth { username: file.username.clone(), password: file.password.clone() })
        }
        (None, None, None) => None,
    };
    let mut tls = file.map(CtlFile::client_tls).unwrap_or_default();
    let flags = &args.tls;
    tls.insecure |= flags.insecure;
    if flags.cacert.is_some() {
        tls.cacert.clone_from(&flags.cacert);
    }
    if flags.certfile.is_some() {
        tls.certfile.clone_from(&flags.certfile);
        tls.keyfile.clone_from(&flags.keyfile);
    }
    let scope = cluster.map(str::to_owned).or_else(|| file.and_then(|f| f.scope.clone()));
    Ok(Target { urls, auth, tls, scope })
}

/// `a,b` → the base URLs of a and b.
pub fn split_urls(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(base_url).collect()
}

/// The members' base URLs from a `GET /cluster` body: the leader's first, then the others by name.
pub fn leader_first(cluster: &Value) -> Vec<String> {
    let mut members: Vec<&Value> =
        cluster["members"].as_array().map(|m| m.iter().collect()).unwrap_or_default();
    members.sort_by_key(|m| (!super::list::is_leader(m), m["name"].as_str().unwrap_or("").to_string()));
    members.iter().filter_map(|m| m["api_url"].as_str()).map(base_url).collect()
}

/// `first`, then `rest`, without repeats.
pub fn ordered(first: impl IntoIterator<Item = String>, rest: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for url in first.into_iter().chain(rest.iter().cloned()) {
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

/// The agent's message from an error response: `{"error": "..."}`'s text, else the body, else the
/// status's reason.
pub fn error_message(status: u16, body: &str) -> String {
    let from_json =
        serde_json::from_str::<Value>(body).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
    let text = from_json.unwrap_or_else(|| body.trim().chars().take(300).collect());
    if !text.is_empty() {
        return text;
    }
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("no reason given")
        .to_string()
}

/// What went wrong with one call to one agent.
enum CallError {
    /// The agent did not answer (connection refused, timeout, …): try the next one.
    Unreachable(String),
    /// The agent answered with an error (its HTTP status), or with a body that could not be read
    /// (`None`): final.
    Answered(String, Option<u16>),
}

/// A client of the cluster's REST API.
pub struct Client {
    http: reqwest::Client,
    auth: Option<Auth>,
    urls: Vec<String>,
    scope: Option<String>,
}

impl Client {
    /// A client for `target`.
    pub fn new(target: Target) -> Result<Client, String> {
        let http = vigil_api::tls::client_builder(&target.tls, "ctl")
            .map_err(|e| e.to_string())?
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Client { http, auth: target.auth, urls: target.urls, scope: target.scope })
    }

    /// The agents known so far, in the order reads try them.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// `GET /cluster` from the first agent that answers; every member's URL becomes known. An error
    /// when the cluster is not the one the user named.
    pub async fn cluster(&mut self) -> Result<Value, String> {
        let cluster = self.get("/cluster").await?;
        if let Some(expected) = &self.scope {
            let scope = cluster["scope"].as_str().unwrap_or("");
            if scope != expected {
                return Err(format!(
                    "{} belongs to cluster {scope:?}, not {expected:?} (the CLUSTER argument or the file's scope)",
                    self.urls.first().map_or("the agent", String::as_str)
                ));
            }
        }
        for url in leader_first(&cluster) {
            if !self.urls.contains(&url) {
                self.urls.push(url);
            }
        }
        Ok(cluster)
    }

    /// `GET path` as JSON from the first agent that answers (which is tried first from then on).
    pub async fn get(&mut self, path: &str) -> Result<Value, String> {
        let urls = self.urls.clone();
        let (url, body) = self.send(Method::GET, path, None, &urls, READ_TIMEOUT).await?;
        if let Some(i) = self.urls.iter().position(|u| *u == url) {
            self.urls[..=i].rotate_right(1);
        }
        serde_json::from_str(&body)
            .map_err(|e| format!("{url}{path} answered with something that is not JSON: {e}"))
    }

    /// `GET /events` with `query`: the events it selects, oldest first.
    pub async fn events(&mut self, query: &vigil_api::EventQuery) -> Result<Vec<vigil_api::Event>, String> {
        let body = self.get(&format!("/events{}", query.to_query_string())).await?;
        serde_json::from_value(body)
            .map_err(|e| format!("GET /events answered with events this vigil cannot read: {e}"))
    }

    /// `GET path` as JSON from the agent at `url` only.
    pub async fn get_from(&self, url: &str, path: &str) -> Result<Value, String> {
        let body = match self.call(Method::GET, url, path, None, READ_TIMEOUT).await {
            Ok(body) => body,
            Err(CallError::Unreachable(why)) => return Err(format!("{url} did not answer: {why}")),
            Err(CallError::Answered(message, _)) => return Err(message),
        };
        serde_json::from_str(&body)
            .map_err(|e| format!("{url}{path} answered with something that is not JSON: {e}"))
    }

    /// Calls `method path` with the JSON `body` on the agent at `url` only: its answer, else what went
    /// wrong with the HTTP status of an error answer (`None`: the agent did not answer).
    pub async fn send_to(
        &self,
        method: Method,
        url: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<String, (String, Option<u16>)> {
        self.call(method, url, path, body, timeout).await.map_err(|e| match e {
            CallError::Unreachable(why) => (format!("{url} did not answer: {why}"), None),
            CallError::Answered(message, status) => (message, status),
        })
    }

    /// Calls `method path` with the JSON `body` on the agents in `order`, moving on while they do not
    /// answer; the URL that answered and its response body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        order: &[String],
        timeout: Duration,
    ) -> Result<(String, String), String> {
        let mut failed: Vec<String> = Vec::new();
        for (i, url) in order.iter().enumerate() {
            match self.call(method.clone(), url, path, body, timeout).await {
                Ok(text) => return Ok((url.clone(), text)),
                Err(CallError::Answered(message, _)) => return Err(message),
                Err(CallError::Unreachable(why)) => {
                    if let Some(next) = order.get(i + 1) {
                        eprintln!("vigil: {url} did not answer ({why}); trying {next}");
                    }
                    failed.push(format!("{url} ({why})"));
                }
            }
        }
        Err(match failed.as_slice() {
            [] => "no agent to ask: give -c FILE, --api URL or VIGIL_API".to_string(),
            [one] => format!("no agent answered: {one}"),
            many => format!("no agent answered: {}", many.join(", ")),
        })
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<String, CallError> {
        let mut request = self.http.request(method.clone(), format!("{url}{path}")).timeout(timeout);
        // Every call, reads too: an agent with restapi.read_authentication wants credentials for them.
        if let Some(auth) = &self.auth {
            request = request.basic_auth(&auth.username, Some(auth.password.expose()));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| CallError::Unreachable(cause(&e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            CallError::Answered(format!("{url}{path}: the answer could not be read: {}", cause(&e)), None)
        })?;
        if status.is_success() {
            return Ok(text);
        }
        let mut message =
            format!("{} (HTTP {} from {url})", error_message(status.as_u16(), &text), status.as_u16());
        if status == reqwest::StatusCode::UNAUTHORIZED {
            message +=
                "; give credentials with --username/--password, VIGIL_API_USERNAME/VIGIL_API_PASSWORD \
                        or -c FILE (restapi.authentication)";
        }
        Err(CallError::Answered(message, Some(status.as_u16())))
    }
}

/// The innermost cause of a request error (`Connection refused (os error 111)`, `timed out`).
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_string();
    }
    let mut source: &dyn std::error::Error = error;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// An agent's configuration file with `extra` in the `restapi` section, as the CLI reads it.
    fn config(extra: &str) -> CtlFile {
        let yaml = format!(
            "scope: s\nname: n1\nrestapi:\n  listen: 0.0.0.0:8008\n  connect_address: 10.0.0.1:8008\n{extra}\
             raft:\n  data_dir: /tmp/raft\n  self_addr: 10.0.0.1:2222\npostgresql:\n  listen: 0.0.0.0:5432\n\
             \x20 data_dir: /tmp/pg\n  authentication:\n    superuser: {{username: postgres, password: x}}\n"
        );
        CtlFile::parse(&yaml, &no_env).expect("config")
    }

    #[test]
    fn urls_come_from_api_then_the_file_then_the_environment() {
        let args =
            ConnectArgs { api: Some("127.0.0.1:8008/, http://h:9/patroni".into()), ..Default::default() };
        let target = resolve(&args, None, None, &no_env).expect("target");
        assert_eq!(target.urls, ["http://127.0.0.1:8008", "http://h:9"]);
        assert_eq!(target.auth, None);

        let env = |k: &str| (k == "VIGIL_API").then(|| "http://e:1".to_string());
        let c = config("  allowlist: [10.0.0.0/8]\n");
        assert_eq!(
            resolve(&ConnectArgs::default(), None, Some(&c), &env).expect("file").urls,
            ["http://10.0.0.1:8008"]
        );
        assert_eq!(resolve(&ConnectArgs::default(), None, None, &env).expect("env").urls, ["http://e:1"]);
        let err = resolve(&ConnectArgs::default(), None, None, &no_env).expect_err("nothing");
        assert!(err.contains("-c FILE"), "{err}");
    }

    #[test]
    fn credentials_come_from_flags_then_the_environment_then_the_file() {
        let c = config("  authentication: {username: admin, password: secret}\n");
        let auth = |u: &str, p: &str| Some(Auth { username: u.into(), password: p.into() });
        assert_eq!(
            resolve(&ConnectArgs::default(), None, Some(&c), &no_env).expect("file").auth,
            auth("admin", "secret")
        );
        let env = |k: &str| match k {
            "VIGIL_API_USERNAME" => Some("eu".to_string()),
            "VIGIL_API_PASSWORD" => Some("ep".to_string()),
            _ => None,
        };
        assert_eq!(
            resolve(&ConnectArgs::default(), None, Some(&c), &env).expect("env").auth,
            auth("eu", "ep")
        );
        let args =
            ConnectArgs { username: Some("fu".into()), password: Some("fp".into()), ..Default::default() };
        assert_eq!(resolve(&args, None, Some(&c), &env).expect("flags").auth, auth("fu", "fp"));
        let only_password =
            ConnectArgs { api: Some("h:1".into()), password: Some("p".into()), ..Default::default() };
        assert!(resolve(&only_password, None, None, &no_env).is_err());
        assert!(!format!("{:?}", auth("a", "secret")).contains("secret"));
    }

    #[test]
    fn tls_flags_win_over_the_file_and_the_scope_is_the_arguments_or_the_files() {
        let file = CtlFile::parse(
            "scope: it\nrestapi: {connect_address: 'h:1', cafile: /api-ca.pem}\n\
             ctl: {certfile: /ctl.pem, keyfile: /ctl.key}\n",
            &no_env,
        )
        .expect("file");
        let target = resolve(&ConnectArgs::default(), None, Some(&file), &no_env).expect("file only");
        assert_eq!(target.urls, ["https://h:1"]);
        assert_eq!(
            (target.tls.cacert, target.tls.keyfile),
            (Some("/api-ca.pem".into()), Some("/ctl.key".into()))
        );
        assert_eq!(target.scope.as_deref(), Some("it"));
        let mut args = ConnectArgs::default();
        args.tls.insecure = true;
        args.tls.cacert = Some("/flag-ca.pem".into());
        args.tls.certfile = Some("/flag.pem".into());
        let target = resolve(&args, Some("batman"), Some(&file), &no_env).expect("flags");
        let tls = target.tls;
        assert!(tls.insecure);
        assert_eq!(
            (tls.cacert, tls.certfile, tls.keyfile),
            (Some("/flag-ca.pem".into()), Some("/flag.pem".into()), None)
        );
        assert_eq!(target.scope.as_deref(), Some("batman"));
    }

    #[test]
    fn the_leader_comes_first_and_urls_are_not_repeated() {
        let cluster = json!({"members": [
            {"name": "b", "role": "replica", "api_url": "http://h:2/patroni"},
            {"name": "c", "role": "leader", "api_url": "http://h:3/patroni"},
            {"name": "a", "role": "replica", "api_url": "http://h:1/patroni"},
            {"name": "d", "role": "replica"}]});
        assert_eq!(leader_first(&cluster), ["http://h:3", "http://h:1", "http://h:2"]);
        let known = vec!["http://h:2".to_string(), "http://x:9".to_string()];
        assert_eq!(
            ordered(leader_first(&cluster), &known),
            ["http://h:3", "http://h:1", "http://h:2", "http://x:9"]
        );
    }

    #[test]
    fn error_messages_are_the_agents() {
        assert_eq!(error_message(412, r#"{"error": "node2 is not the leader"}"#), "node2 is not the leader");
        assert_eq!(error_message(500, "boom\n"), "boom");
        assert_eq!(error_message(503, ""), "Service Unavailable");
    }

    #[tokio::test]
    async fn an_agent_that_does_not_answer_is_skipped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dead = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let app = axum::Router::new().route(
            "/cluster",
            axum::routing::get(|| async { axum::Json(json!({"scope": "s", "members": []})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let alive = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut client = Client::new(Target {
            urls: vec![dead.clone(), alive.clone()],
            auth: None,
            tls: Default::default(),
            scope: None,
        })
        .expect("client");
        assert_eq!(client.cluster().await.expect("cluster")["scope"], "s");
        assert_eq!(client.urls(), [alive.clone(), dead.clone()], "the agent that answered is asked first");
        let err = client.get_from(&dead, "/cluster").await.expect_err("dead");
        assert!(err.starts_with(&format!("{dead} did not answer")), "{err}");
        let err = client.get("/nothing").await.expect_err("404");
        assert!(err.contains("(HTTP 404 from"), "{err}");
        let target = Target {
            urls: vec![alive.clone()],
            auth: None,
            tls: Default::default(),
            scope: Some("b".into()),
        };
        let err = Client::new(target).expect("client").cluster().await.expect_err("another cluster");
        assert_eq!(
            err,
            format!("{alive} belongs to cluster \"s\", not \"b\" (the CLUSTER argument or the file's scope)")
        );
    }

    /// An agent stand-in: fixed answers; a switchover is refused with 412 and the agent's reason.
    struct Stub;

    impl vigil_api::Management for Stub {
        fn cluster(&self) -> vigil_api::BoxFuture<'_, Result<vigil_api::Cluster, vigil_api::ApiError>> {
            Box::pin(async { Ok(vigil_api::Cluster { scope: "s".into(), ..Default::default() }) })
        }
        fn history(
            &self,
        ) -> vigil_api::BoxFuture<'_, Result<Vec<vigil_api::HistoryEntry>, vigil_api::ApiError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn config(&self) -> vigil_api::BoxFuture<'_, Result<Value, vigil_api::ApiError>> {
            Box::pin(async { Ok(json!({"ttl": 3})) })
        }
        fn set_config(
            &self,
            body: Value,
            _replace: bool,
        ) -> vigil_api::BoxFuture<'_, Result<Value, vigil_api::ApiError>> {
            Box::pin(async move { Ok(body) })
        }
        fn switchover(
            &self,
            request: vigil_api::SwitchoverRequest,
            _failover: bool,
        ) -> vigil_api::BoxFuture<'_, Result<String, vigil_api::ApiError>> {
            let why = format!("{} is not the leader", request.leader.unwrap_or_default());
            Box::pin(async move { Err(vigil_api::ApiError::new(412, why)) })
        }
        fn cancel_switchover(&self) -> vigil_api::BoxFuture<'_, Result<String, vigil_api::ApiError>> {
            Box::pin(async { Ok("cancelled".to_string()) })
        }
        fn restart(
            &self,
            _: vigil_api::RestartRequest,
        ) -> vigil_api::BoxFuture<'_, Result<String, vigil_api::ApiError>> {
            Box::pin(async { Ok("restarted".to_string()) })
        }
        fn reload(&self) -> vigil_api::BoxFuture<'_, Result<String, vigil_api::ApiError>> {
            Box::pin(async { Ok("reloaded".to_string()) })
        }
        fn reinitialize(
            &self,
            _: vigil_api::ReinitializeRequest,
        ) -> vigil_api::BoxFuture<'_, Result<String, vigil_api::ApiError>> {
            Box::pin(async { Ok("reinitialize started".to_string()) })
        }
    }

    #[tokio::test]
    async fn calls_carry_basic_auth_and_report_the_agents_error() {
        let auth = |user: &str, password: &str| {
            Some(vigil_api::BasicAuth { username: user.into(), password: password.into() })
        };
        let credentials =
            vigil_api::auth::Credentials { admin: auth("admin", "s3cret"), read: auth("monitor", "r3ad") };
        let app = vigil_api::management_router(std::sync::Arc::new(Stub));
        let app = vigil_api::auth::require_credentials(app, credentials);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let urls = vec![url.clone()];
        let patch = json!({"pause": true});

        let anonymous =
            Client::new(Target { urls: urls.clone(), auth: None, tls: Default::default(), scope: None })
                .expect("client");
        let err = anonymous.send(Method::PATCH, "/config", Some(&patch), &urls, CHANGE_TIMEOUT).await;
        let err = err.expect_err("401");
        assert!(err.starts_with(&format!("authentication required: wrong or missing credentials (HTTP 401 from {url}); give credentials")), "{err}");
        assert!(anonymous.get_from(&url, "/config").await.expect_err("401 for a read").contains("HTTP 401"));

        let auth = Some(Auth { username: "admin".into(), password: "s3cret".into() });
        let mut client = Client::new(Target {
            urls: urls.clone(),
            auth,
            tls: Default::default(),
            scope: Some("s".into()),
        })
        .expect("client");
        let (_, body) =
            client.send(Method::PATCH, "/config", Some(&patch), &urls, CHANGE_TIMEOUT).await.expect("patch");
        assert_eq!(serde_json::from_str::<Value>(&body).expect("json"), patch);
        assert_eq!(client.get("/config").await.expect("read"), json!({"ttl": 3}));

        let request = json!({"leader": "n2"});
        let err = client.send(Method::POST, "/switchover", Some(&request), &urls, CHANGE_TIMEOUT).await;
        assert_eq!(err.expect_err("412"), format!("n2 is not the leader (HTTP 412 from {url})"));
    }
}
