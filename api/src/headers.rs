//! Headers added to every response, as Patroni adds them: `restapi.http_extra_headers` (and, when the
//! API speaks HTTPS, `https_extra_headers` too) and the `Server` header `restapi.server_tokens` chooses.

use axum::extract::State;
use axum::http::header::SERVER;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::Router;
use std::sync::Arc;

/// The headers set on every response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders(Vec<(HeaderName, HeaderValue)>);

impl ResponseHeaders {
    /// `server` as the `Server` header, then each of `extra` (name, value; a later one replaces an
    /// earlier one of the same name). The error names the header that is not a valid one, after
    /// `context` (the setting it comes from).
    pub fn new<'a>(
        server: &str,
        extra: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Result<Self, String> {
        let server = HeaderValue::from_str(server).map_err(|e| format!("Server header {server:?}: {e}"))?;
        let mut headers = vec![(SERVER, server)];
        for (context, name, value) in extra {
            let bad = |e: &dyn std::fmt::Display| format!("{context}: header {name:?}: {e}");
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
            let value = HeaderValue::from_str(value).map_err(|e| bad(&e))?;
            headers.push((name, value));
        }
        Ok(ResponseHeaders(headers))
    }
}

/// `router` with `headers` set on each of its responses (replacing a header of the same name the
/// handler set).
pub fn with_response_headers(router: Router, headers: ResponseHeaders) -> Router {
    router.layer(middleware::map_response_with_state(Arc::new(headers), add))
}

async fn add(State(headers): State<Arc<ResponseHeaders>>, mut response: Response) -> Response {
    for (name, value) in &headers.0 {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_headers_are_named() {
        let extra = [("restapi.http_extra_headers", "X-Frame-Options", "SAMEORIGIN")];
        assert!(ResponseHeaders::new("Vigil", extra).is_ok());
        let bad = [("restapi.https_extra_headers", "Bad Name", "v")];
        let err = ResponseHeaders::new("Vigil", bad).unwrap_err();
        assert!(err.starts_with("restapi.https_extra_headers: header \"Bad Name\""), "{err}");
        let err = ResponseHeaders::new("Vigil", [("restapi.http_extra_headers", "X-A", "a\nb")]).unwrap_err();
        assert!(err.contains("\"X-A\""), "{err}");
    }
}
