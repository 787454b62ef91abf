//! The pod labels that route clients in Kubernetes (`kubernetes:` in the configuration): each agent labels
//! its own pod `vigil.io/role: primary` while it leads a writable primary, `replica` otherwise, and
//! `vigil.io/scope: <scope>`; a Service selecting the primary label routes to the primary alone. A new
//! primary removes the label from every other pod of its scope before it is promoted (a crashed or
//! partitioned primary cannot remove its own), and again from time to time.
//!
//! Kubernetes only routes: the Raft group decides who the primary is, and a primary that loses its lease
//! is fenced whether or not the API answers. Every call is bounded ([`CALL_TIMEOUT`]) and runs beside the
//! HA loop, never in it; an unreachable API never holds up a failover for longer than the bound.
//! Plain HTTP calls through reqwest (a merge patch and a list): the `kube` crate would bring its whole
//! client and API types for two requests.

use crate::config::{Config, KubernetesConfig, SERVICE_ACCOUNT_DIR};
use crate::status::SharedStatus;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use vigil_api::StatusSource;

/// How long one call to the API may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the labels are set again though nothing changed (a label edited by hand, a pod recreated).
const REFRESH: Duration = Duration::from_secs(30);
/// How often the agent's role is looked at (in memory).
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// The value of the role label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodRole {
    /// A writable primary holding the lease by its own deadline.
    Primary,
    /// Anything else.
    Replica,
}

impl PodRole {
    fn as_str(self) -> &'static str {
        match self {
            PodRole::Primary => "primary",
            PodRole::Replica => "replica",
        }
    }
}

/// This pod's labels, set through the Kubernetes API with the service account's token.
pub struct PodLabels {
    http: reqwest::Client,
    /// `<api_url>/api/v1/namespaces/<namespace>/pods`.
    pods_url: String,
    /// `<api_url>/apis/apps/v1/namespaces/<namespace>/statefulsets`.
    statefulsets_url: String,
    pod: String,
    scope: String,
    role_label: String,
    scope_label: String,
    token_file: PathBuf,
}

impl PodLabels {
    /// The labels `config`'s `kubernetes` section asks for (`None` without one), its defaults taken from
    /// the pod: `$POD_NAME` or the host name, the service account's namespace, `$KUBERNETES_SERVICE_HOST`.
    /// `Err` names the key that is missing or unusable.
    pub fn from_config(config: &Config) -> Result<Option<PodLabels>, String> {
        let Some(k) = &config.kubernetes else { return Ok(None) };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let api = match (&k.api_url, env("KUBERNETES_SERVICE_HOST")) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(host)) => {
                let host = if host.contains(':') { format!("[{host}]") } else { host };
                format!("https://{host}:{}", env("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into()))
            }
            (None, None) => {
                return Err(
                    "kubernetes.api_url: not set, and $KUBERNETES_SERVICE_HOST is not set either".into()
                )
            }
        };
        let namespace = match &k.namespace {
            Some(namespace) => namespace.clone(),
            None => {
                let file = PathBuf::from(SERVICE_ACCOUNT_DIR).join("namespace");
                let read = std::fs::read_to_string(&file).map(|n| n.trim().to_owned());
                read.map_err(|e| {
                    format!("kubernetes.namespace: not set, and {} unreadable: {e}", file.display())
                })?
            }
        };
        let pod = match (&k.pod_name, env("POD_NAME")) {
            (Some(pod), _) => pod.clone(),
            (None, Some(pod)) => pod,
            (None, None) => {
                host_name().ok_or("kubernetes.pod_name: not set, and neither $POD_NAME nor the host name")?
            }
        };
        if !k.token_file.is_file() {
            return Err(format!("kubernetes.token_file: {} is not a file", k.token_file.display()));
        }
        Ok(Some(PodLabels {
            http: client(k, &api)?,
            pods_url: format!("{api}/api/v1/namespaces/{namespace}/pods"),
            statefulsets_url: format!("{api}/apis/apps/v1/namespaces/{namespace}/statefulsets"),
            pod,
            scope: config.scope.clone(),
            role_label: k.role_label.clone(),
            scope_label: k.scope_label.clone(),
            token_file: k.token_file.clone(),
        }))
    }

    /// This pod's name.
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// The service account's token, read now.
    fn token(&self) -> Result<String, String> {
        let token = std::fs::read_to_string(&self.token_file)
            .map_err(|e| format!("kubernetes.token_file {}: {e}", self.token_file.display()))?;
        Ok(token.trim().to_owned())
    }

    /// Merges `labels` (a `null` value removes one) into pod `pod`'s.
    async fn patch(&self, pod: &str, labels: serde_json::Value) -> Result<(), String> {
        let url = format!("{}/{pod}", self.pods_url);
        let request = self
            .http
            .patch(&url)
            .bearer_auth(self.token()?)
            .header(reqwest::header::CONTENT_TYPE, "application/merge-patch+json")
            .body(json!({ "metadata": { "labels": labels } }).to_string())
            .timeout(CALL_TIMEOUT);
        answered(request, &url).await.map(drop)
    }

    /// Labels this pod with `role` and the scope.
    pub async fn label_self(&self, role: PodRole) -> Result<(), String> {
        let labels = json!({ &self.role_label: role.as_str(), &self.scope_label: &self.scope });
        self.patch(&self.pod, labels).await
    }

    /// Removes the primary label from every other pod of this scope; returns their names.
    pub async fn clear_stale_primaries(&self) -> Result<Vec<String>, String> {
        let selector = format!("{}={},{}=primary", self.scope_label, self.scope, self.role_label);
        let request = self
            .http
            .get(&self.pods_url)
            .query(&[("labelSelector", selector.as_str())])
            .bearer_auth(self.token()?)
            .timeout(CALL_TIMEOUT);
        let list: serde_json::Value = answered(request, &self.pods_url).await?;
        let names = list["items"].as_array().into_iter().flatten();
        let stale: Vec<String> = names
            .filter_map(|pod| pod["metadata"]["name"].as_str())
            .filter(|name| *name != self.pod)
            .map(str::to_owned)
            .collect();
        for name in &stale {
            self.patch(name, json!({ &self.role_label: null })).await?;
            tracing::warn!(pod = %name, "stale primary label removed from another pod");
        }
        Ok(stale)
    }
}

impl PodLabels {
    /// Whether this pod is being scaled away: its StatefulSet (the pod's name without its `-<ordinal>`)
    /// now wants no more replicas than the pod's ordinal. `false` when that cannot be told (a pod name
    /// without an ordinal, an API that does not answer): the member then stays in the Raft group, as
    /// after any restart.
    pub async fn scaled_away(&self) -> bool {
        let Some((set, ordinal)) = statefulset_of(&self.pod) else { return false };
        let url = format!("{}/{set}", self.statefulsets_url);
        let replicas = match self.token() {
            Ok(token) => answered(self.http.get(&url).bearer_auth(token).timeout(CALL_TIMEOUT), &url).await,
            Err(e) => Err(e),
        };
        match replicas.map(|set| set["spec"]["replicas"].as_u64()) {
            Ok(Some(replicas)) => {
                tracing::info!(pod = %self.pod, statefulset = set, replicas, "StatefulSet read at shutdown");
                ordinal >= replicas
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether this pod is scaled away: it stays a Raft member");
                false
            }
        }
    }
}

/// A StatefulSet pod's set and ordinal (`vigil-2`: `vigil`, 2).
fn statefulset_of(pod: &str) -> Option<(&str, u64)> {
    let (set, ordinal) = pod.rsplit_once('-')?;
    let ordinal = ordinal.parse().ok()?;
    (!set.is_empty()).then_some((set, ordinal))
}

/// Sends `request` to `url`; the JSON body of a 2xx answer, else what went wrong.
async fn answered(request: reqwest::RequestBuilder, url: &str) -> Result<serde_json::Value, String> {
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let said = response.text().await.unwrap_or_default();
        return Err(format!("{url}: HTTP {}: {}", status.as_u16(), said.trim()));
    }
    response.json().await.map_err(|e| format!("{url}: unreadable answer: {e}"))
}

/// The client for the API server: its CA from `kubernetes.cafile` for HTTPS.
fn client(k: &KubernetesConfig, api: &str) -> Result<reqwest::Client, String> {
    let tls = vigil_api::tls::ClientTls {
        cacert: api.starts_with("https://").then(|| k.cafile.clone()),
        ..Default::default()
    };
    vigil_api::tls::client(&tls, "kubernetes")
}

/// This machine's host name (a StatefulSet pod's is its pod name).
fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let end = buffer.iter().position(|b| *b == 0)?;
    (rc == 0 && end > 0).then(|| String::from_utf8_lossy(&buffer[..end]).into_owned())
}

/// Keeps this pod's labels in line with `status`: set at each change of role, and every [`REFRESH`];
/// while primary, other pods' stale primary labels are removed at the same pace. A failure is logged and
/// tried again a second later.
pub fn spawn_labeler(pods: Arc<PodLabels>, status: Arc<SharedStatus>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut labelled: Option<PodRole> = None;
        let mut next = Instant::now();
        let mut ticks = tokio::time::interval(WATCH_EVERY);
        loop {
            ticks.tick().await;
            let role = if status.is_leading_primary() { PodRole::Primary } else { PodRole::Replica };
            if Instant::now() < next && labelled.is_none_or(|was| was == role) {
                continue;
            }
            if role == PodRole::Primary {
                if let Err(e) = pods.clear_stale_primaries().await {
                    tracing::warn!(error = %e, "stale primary labels not checked");
                }
            }
            match pods.label_self(role).await {
                Ok(()) => {
                    if labelled != Some(role) {
                        tracing::info!(pod = %pods.pod(), role = role.as_str(), "pod labelled");
                    }
                    (labelled, next) = (Some(role), Instant::now() + REFRESH);
                }
                Err(e) => {
                    tracing::warn!(pod = %pods.pod(), role = role.as_str(), error = %e, "pod not labelled");
                    (labelled, next) = (None, Instant::now() + Duration::from_secs(1));
                }
            }
        }
    })
}
