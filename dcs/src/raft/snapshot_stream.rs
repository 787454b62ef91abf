//! The snapshot a node is being sent, chunk by chunk. openraft 0.9 writes each chunk at the offset the
//! request names, into memory: a chunk far past the end would make it allocate up to that offset. So a
//! chunk must start a snapshot (offset 0) or continue the one being received exactly where it stopped,
//! and a snapshot may not grow past [`MAX_SNAPSHOT`].

use super::refusal::refuse;
use super::{NodeId, Raft, RaftError, TypeConfig};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use openraft::error::{InstallSnapshotError, SnapshotMismatch};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use openraft::SnapshotSegmentId;
use tokio::sync::Mutex;

/// The largest snapshot a node accepts. The store holds a few kilobytes per member.
pub(crate) const MAX_SNAPSHOT: u64 = 64 * 1024 * 1024;

/// The snapshot being received: its id and the offset its next chunk must have.
#[derive(Default)]
pub(crate) struct SnapshotStream {
    current: Mutex<Option<(String, u64)>>,
}

impl SnapshotStream {
    /// Hands an admitted chunk to openraft if it continues the stream; answers as openraft does (a
    /// mismatch makes the sender start again at the expected offset), or 413 past [`MAX_SNAPSHOT`].
    pub(crate) async fn receive(&self, raft: &Raft, rpc: InstallSnapshotRequest<TypeConfig>) -> Response {
        let mut current = self.current.lock().await;
        let id = rpc.meta.snapshot_id.clone();
        let expected = match &*current {
            Some((receiving, next)) if *receiving == id => *next,
            _ => 0,
        };
        if rpc.offset != 0 && rpc.offset != expected {
            let mismatch = SnapshotMismatch {
                expect: SnapshotSegmentId { id: id.clone(), offset: expected },
                got: SnapshotSegmentId { id, offset: rpc.offset },
            };
            let answer: Result<InstallSnapshotResponse<NodeId>, RaftError<InstallSnapshotError>> =
                Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch)));
            return Json(answer).into_response();
        }
        let end = rpc.offset.saturating_add(rpc.data.len() as u64);
        if end > MAX_SNAPSHOT {
            *current = None;
            let why = format!("snapshot {id} would be larger than {MAX_SNAPSHOT} bytes");
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, why);
        }
        let done = rpc.done;
        let result = raft.install_snapshot(rpc).await;
        *current = (result.is_ok() && !done).then_some((id, end));
        Json(result).into_response()
    }
}
