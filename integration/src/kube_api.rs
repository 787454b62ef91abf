//! A fake Kubernetes API server, as much of it as the agents use: the pods of one namespace with their
//! labels, `GET /api/v1/namespaces/<ns>/pods?labelSelector=k=v,…` (equality selectors),
//! `PATCH /api/v1/namespaces/<ns>/pods/<name>` with a JSON merge patch of `metadata.labels`, and a
//! StatefulSet's replica count (`GET /apis/apps/v1/namespaces/<ns>/statefulsets/<name>`), each with a
//! bearer token. It remembers the most pods that carried the primary label at once, and can be taken
//! down (every call answers 503) and brought back.

use crate::Server;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The role label the agents set by default.
pub const ROLE_LABEL: &str = "vigil.io/role";

type Labels = BTreeMap<String, String>;

#[derive(Default)]
struct PodStore {
    pods: BTreeMap<String, Labels>,
    /// The StatefulSets' replica counts, by name.
    replicas: BTreeMap<String, u64>,
    down: bool,
    most_primaries: usize,
}

/// The fake API server, served on a loopback port until dropped.
pub struct FakeKubeApi {
    url: String,
    state: Arc<Mutex<PodStore>>,
    _server: Server,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<PodStore>>,
    namespace: String,
    token: String,
}

impl FakeKubeApi {
    /// Serves namespace `namespace` holding pods `pods` without labels, for callers presenting `token`.
    pub async fn start(namespace: &str, pods: &[String], token: &str) -> FakeKubeApi {
        let state = PodStore {
            pods: pods.iter().map(|p| (p.clone(), Labels::new())).collect(),
            ..PodStore::default()
        };
        let state = Arc::new(Mutex::new(state));
        let shared =
            Shared { state: state.clone(), namespace: namespace.to_owned(), token: token.to_owned() };
        let router = Router::new()
            .route("/api/v1/namespaces/{namespace}/pods", get(list))
            .route("/api/v1/namespaces/{namespace}/pods/{pod}", axum::routing::patch(patch))
            .route("/apis/apps/v1/namespaces/{namespace}/statefulsets/{set}", get(statefulset))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = Server::spawn(listener, router, None).expect("serve");
        FakeKubeApi { url: format!("http://{}", server.addr()), state, _server: server }
    }

    /// Its base URL (`kubernetes.api_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn with<T>(&self, f: impl FnOnce(&mut PodStore) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Pod `pod`'s labels now.
    pub fn labels(&self, pod: &str) -> Labels {
        self.with(|s| s.pods.get(pod).cloned().unwrap_or_default())
    }

    /// Pod `pod`'s role label now (`None`: none).
    pub fn role(&self, pod: &str) -> Option<String> {
        self.labels(pod).get(ROLE_LABEL).cloned()
    }

    /// Takes the server down (every call answers 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.with(|s| s.down = down);
    }

    /// Sets StatefulSet `set`'s replica count (`GET …/statefulsets/<set>` answers 404 until then).
    pub fn set_replicas(&self, set: &str, replicas: u64) {
        self.with(|s| s.replicas.insert(set.to_owned(), replicas));
    }

    /// The most pods that carried `vigil.io/role: primary` at once so far.
    pub fn most_primaries(&self) -> usize {
        self.with(|s| s.most_primaries)
    }
}

/// Whether the request may go on: the server is up and the token is right.
fn refused(shared: &Shared, namespace: &str, headers: &HeaderMap) -> Option<Response> {
    let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    if state.down {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "the fake API server is down").into_response());
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {}", shared.token)) {
        return Some((StatusCode::UNAUTHORIZED, "wrong or missing token").into_response());
    }
    (namespace != shared.namespace).then(|| (StatusCode::NOT_FOUND, "no such namespace").into_response())
}

async fn list(
    State(shared): State<Shared>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&shared, &namespace, &headers) {
        return refusal;
    }
    let wanted: Vec<(&str, &str)> = query
        .get("labelSelector")
        .map(|s| s.split(',').filter_map(|term| term.split_once('=')).collect())
        .unwrap_or_default();
    let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let items: Vec<Value> = state
        .pods
        .iter()
        .filter(|(_, labels)| wanted.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|(name, labels)| json!({ "metadata": { "name": name, "namespace": namespace, "labels": labels } }))
        .collect();
    Json(json!({ "kind": "PodList", "items": items })).into_response()
}

async fn statefulset(
    State(shared): State<Shared>,
    Path((namespace, set)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&shared, &namespace, &headers) {
        return refusal;
    }
    let replicas = shared.state.lock().unwrap_or_else(|e| e.into_inner()).replicas.get(&set).copied();
    match replicas {
        Some(replicas) => {
            Json(json!({ "metadata": { "name": set }, "spec": { "replicas": replicas } })).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such statefulset").into_response(),
    }
}

async fn patch(
    State(shared): State<Shared>,
    Path((namespace, pod)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refusal) = refused(&shared, &namespace, &headers) {
        return refusal;
    }
    let merge =
        headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/merge-patch+json");
    let Ok(patch) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    if !merge {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "a merge patch is expected").into_response();
    }
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let Some(labels) = state.pods.get_mut(&pod) else {
        return (StatusCode::NOT_FOUND, "no such pod").into_response();
    };
    for (key, value) in patch["metadata"]["labels"].as_object().into_iter().flatten() {
        match value.as_str() {
            Some(value) => labels.insert(key.clone(), value.to_owned()),
            None => labels.remove(key),
        };
    }
    let answer = json!({ "metadata": { "name": pod, "labels": labels } });
    let primaries =
        state.pods.values().filter(|l| l.get(ROLE_LABEL).map(String::as_str) == Some("primary")).count();
    state.most_primaries = state.most_primaries.max(primaries);
    Json(answer).into_response()
}
