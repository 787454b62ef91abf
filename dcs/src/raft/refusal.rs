//! How a node refuses a request from another node: an HTTP error status with `{"error": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// The body of every refusal (`4xx`/`5xx`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    /// Why.
    pub error: String,
}

/// An error answer: `status` with `{"error": message}`.
pub(crate) fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}
