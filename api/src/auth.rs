//! HTTP basic auth for the REST API: Patroni's `restapi.authentication` (the admin credentials) and
//! Vigil's own `restapi.read_authentication` (read-only credentials for the status endpoints).
//!
//! | request | read credentials not configured | read credentials configured |
//! |---|---|---|
//! | health check (`/primary`, `/replica`, `/health`, … any method) | open | open |
//! | another read (GET, HEAD, OPTIONS: `/patroni`, `/cluster`, `/config`, `/metrics`, …) | open | read or admin credentials (401) |
//! | a change (any other method) | admin credentials, when configured (401) | the same; read credentials get 403 |
//!
//! Health checks stay open for load balancers. Only routes the router has are checked: an unknown path
//! is a 404 for anyone.

use crate::routes::is_health_check;
use crate::{ApiError, Secret};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;

/// A user name and password for HTTP basic auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// The credentials the REST API asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `restapi.authentication`: needed for changes, and good for reads too.
    pub admin: Option<BasicAuth>,
    /// `restapi.read_authentication`: when set, reads other than the health checks need these or the
    /// admin credentials; they are refused (403) for changes.
    pub read: Option<BasicAuth>,
}

/// Adds the credential checks of `credentials` to `router`'s routes (see the module's table).
pub fn require_credentials(router: Router, credentials: Credentials) -> Router {
    router.route_layer(middleware::from_fn_with_state(Arc::new(credentials), check))
}

/// Who a request's `Authorization` header says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Admin,
    Reader,
    Unknown,
}

async fn check(State(credentials): State<Arc<Credentials>>, request: Request, next: Next) -> Response {
    if is_health_check(request.uri().path()) {
        return next.run(request).await;
    }
    let reads = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let needed = if reads { credentials.read.as_ref() } else { credentials.admin.as_ref() };
    if needed.is_none() {
        return next.run(request).await;
    }
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match (caller(&credentials, given), reads) {
        (Caller::Admin, _) | (Caller::Reader, true) => next.run(request).await,
        (Caller::Reader, false) => ApiError::new(
            403,
            "read-only credentials: restapi.read_authentication may only read; this call needs the \
             credentials of restapi.authentication",
        )
        .into_response(),
        (Caller::Unknown, _) => {
            let mut response =
                ApiError::new(401, "authentication required: wrong or missing credentials").into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"vigil\""));
            response
        }
    }
}

/// Whose credentials the `Authorization` header value `given` carries.
fn caller(credentials: &Credentials, given: Option<&str>) -> Caller {
    let matches = |auth: &Option<BasicAuth>| auth.as_ref().is_some_and(|auth| presents(auth, given));
    if matches(&credentials.admin) {
        Caller::Admin
    } else if matches(&credentials.read) {
        Caller::Reader
    } else {
        Caller::Unknown
    }
}

/// Whether the `Authorization` header value `given` carries `auth`'s user name and password.
pub(crate) fn presents(auth: &BasicAuth, given: Option<&str>) -> bool {
    let Some((user, password)) = given.and_then(decode_basic) else { return false };
    constant_time_eq(user.as_bytes(), auth.username.as_bytes())
        & constant_time_eq(password.as_bytes(), auth.password.expose().as_bytes())
}

/// `Basic <base64(user:password)>` → (user, password).
fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Standard base64 (RFC 4648, with padding) decoding.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|a| *a == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// Compares without stopping at the first difference, so timing does not tell how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_debug_hides_the_password() {
        let auth = BasicAuth { username: "admin".into(), password: "s3cret".into() };
        let debug = format!("{auth:?}");
        assert!(debug.contains("admin") && !debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn basic_auth_headers_decode() {
        // "admin:s3cret:x" → the password may contain ':'.
        assert_eq!(decode_basic("Basic YWRtaW46czNjcmV0Ong="), Some(("admin".into(), "s3cret:x".into())));
        assert_eq!(decode_basic("Bearer abc"), None);
        assert_eq!(decode_basic("Basic !!!"), None);
    }

    #[test]
    fn callers_are_told_apart_by_user_and_password() {
        let auth =
            |user: &str, password: &str| Some(BasicAuth { username: user.into(), password: password.into() });
        let credentials = Credentials { admin: auth("admin", "s3cret"), read: auth("monitor", "r3ad") };
        // base64 of "admin:s3cret", "monitor:r3ad", "monitor:s3cret".
        assert_eq!(caller(&credentials, Some("Basic YWRtaW46czNjcmV0")), Caller::Admin);
        assert_eq!(caller(&credentials, Some("Basic bW9uaXRvcjpyM2Fk")), Caller::Reader);
        assert_eq!(caller(&credentials, Some("Basic bW9uaXRvcjpzM2NyZXQ=")), Caller::Unknown);
        assert_eq!(caller(&credentials, None), Caller::Unknown);
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
