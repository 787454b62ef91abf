//! The bodies of the mutating management routes, read and checked before the agent sees them: at most
//! [`MAX_BODY`] bytes (413), UTF-8, a JSON object (never an array, a string or a number: 400), with the
//! route's fields. Every rejection is JSON `{"error": …}` (axum's own are plain text), and a rejected
//! request changes nothing.
//!
//! The readers ([`config_patch`], [`switchover_request`], [`restart_request`], [`reinitialize_request`],
//! [`add_member_request`], [`member_request`], [`no_parameters`]) are what the server runs, so tests can feed them any bytes.

use crate::restart::{postgres_version_number, restart_timeout};
use crate::{
    schedule_for_request, AddMemberRequest, ApiError, DeathCertificate, MemberRequest, ReinitializeRequest,
    RestartRequest, SwitchoverRequest,
};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::SystemTime;

/// The largest body a management route reads: 64 KiB, far more than any dynamic configuration needs.
pub const MAX_BODY: usize = 64 * 1024;

/// A request body as bytes, read within [`MAX_BODY`] (the router's limit); a body that cannot be read
/// answers a JSON error with axum's status (413 over the limit).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state).await.map(RawBody).map_err(|rejection| {
            let why = match rejection.status().as_u16() {
                413 => format!("the request body is larger than {MAX_BODY} bytes"),
                _ => format!("the request body could not be read: {}", rejection.body_text()),
            };
            ApiError::new(rejection.status().as_u16(), why)
        })
    }
}

/// `PATCH /config` and `PUT /config`: a JSON object (the patch or the new configuration).
pub fn config_patch(body: &[u8]) -> Result<Value, ApiError> {
    object(body, false).map(Value::Object)
}

/// `POST /switchover` and `POST /failover`.
pub fn switchover_request(body: &[u8]) -> Result<SwitchoverRequest, ApiError> {
    typed(body, false)
}

/// `POST /restart`: an empty body restarts now; a `schedule` must be an ISO 8601 time with a timezone
/// after `now` (400 without a timezone, 422 unreadable or past, as [`schedule_for_request`]); a
/// `postgres_version` must be `X.Y` or `X.Y.Z` and a `timeout` a positive number of seconds or a string
/// with a unit, which the request then carries in seconds (400 naming the field otherwise).
pub fn restart_request(body: &[u8], now: SystemTime) -> Result<RestartRequest, ApiError> {
    let mut fields = object(body, true)?;
    if let Some(value) = fields.get_mut("timeout") {
        let timeout = restart_timeout(value).map_err(|e| ApiError::new(400, e))?;
        *value = timeout.as_secs().into();
    }
    match fields.get("postgres_version") {
        Some(Value::String(text)) => {
            postgres_version_number(text).map_err(|e| ApiError::new(400, e))?;
        }
        Some(other) => {
            let why = format!("postgres_version should be a string such as \"15.2\", not {other}");
            return Err(ApiError::new(400, why));
        }
        None => {}
    }
    let request: RestartRequest = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::new(400, format!("invalid request: {e}")))?;
    if let Some(text) = &request.schedule {
        schedule_for_request(text, "restart", now)?;
    }
    Ok(request)
}

/// `POST /reinitialize`: an empty body takes the defaults.
pub fn reinitialize_request(body: &[u8]) -> Result<ReinitializeRequest, ApiError> {
    typed(body, true)
}

/// `POST /members`: the new node's Raft address, `host:port`.
pub fn add_member_request(body: &[u8]) -> Result<AddMemberRequest, ApiError> {
    let request: AddMemberRequest = typed(body, false)?;
    match request.raft_addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(request),
        _ => Err(ApiError::new(400, format!("raft_addr {:?} is not host:port", request.raft_addr))),
    }
}

/// `POST /members/promote` and `DELETE /members`.
pub fn member_request(body: &[u8]) -> Result<MemberRequest, ApiError> {
    let request: MemberRequest = typed(body, false)?;
    if request.member.trim().is_empty() {
        return Err(ApiError::new(400, "member is empty: give a member's name, node id or Raft address"));
    }
    Ok(request)
}

/// `POST /death`: a member name and the grant its agent last saw.
pub fn death_certificate(body: &[u8]) -> Result<DeathCertificate, ApiError> {
    let certificate: DeathCertificate = typed(body, false)?;
    if certificate.member.trim().is_empty() {
        return Err(ApiError::new(400, "member is empty: give the dead member's name"));
    }
    Ok(certificate)
}

/// The routes that take no parameters (`DELETE /switchover`, `DELETE /restart`, `POST /reload`): an
/// empty body or `{}`.
pub fn no_parameters(body: &[u8]) -> Result<(), ApiError> {
    typed::<NoParameters>(body, true).map(|_| ())
}

/// What [`no_parameters`] accepts: no field at all.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParameters {}

/// The body as a JSON object's fields; an empty body is `{}` when `empty_ok`, else refused.
fn object(body: &[u8], empty_ok: bool) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return match empty_ok {
            true => Ok(Map::new()),
            false => Err(ApiError::new(400, "the request body is empty: send a JSON object")),
        };
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::new(
            400,
            format!("the request body is not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })?;
    match serde_json::from_str(text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(ApiError::new(
            400,
            format!("the request body must be a JSON object, not {}", json_type(&other)),
        )),
        Err(e) => Err(ApiError::new(400, format!("malformed JSON body: {e}"))),
    }
}

/// The body as a `T`, read from a JSON object only (serde would also take an array for a struct).
fn typed<T: DeserializeOwned>(body: &[u8], empty_ok: bool) -> Result<T, ApiError> {
    let fields = object(body, empty_ok)?;
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::new(400, format!("invalid request: {e}")))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<T: std::fmt::Debug>(result: Result<T, ApiError>) -> (u16, String) {
        let err = result.unwrap_err();
        (err.status, err.message)
    }

    #[test]
    fn only_json_objects_are_taken() {
        // Issue 12: `PATCH /config []` was taken (and would have replaced the configuration).
        let expected = "the request body must be a JSON object, not an array";
        assert_eq!(refusal(config_patch(b"[]")), (400, expected.to_owned()));
        for body in [&b"\"x\""[..], b"1", b"null", b"true", b"[{}]"] {
            assert_eq!(switchover_request(body).unwrap_err().status, 400, "{body:?}");
            assert_eq!(reinitialize_request(body).unwrap_err().status, 400, "{body:?}");
            assert_eq!(no_parameters(body).unwrap_err().status, 400, "{body:?}");
            assert_eq!(restart_request(body, SystemTime::UNIX_EPOCH).unwrap_err().status, 400);
        }
        assert_eq!(config_patch(br#"{"ttl": 5}"#).unwrap(), serde_json::json!({"ttl": 5}));
        assert_eq!(config_patch(b" ").unwrap_err().status, 400);
        assert_eq!(reinitialize_request(b"").unwrap(), ReinitializeRequest::default());
        assert!(no_parameters(b"{}").is_ok() && no_parameters(b"").is_ok());
        assert_eq!(no_parameters(br#"{"x": 1}"#).unwrap_err().status, 400);
    }

    #[test]
    fn invalid_utf8_is_a_400_naming_the_offset() {
        let expected = "the request body is not UTF-8 (invalid byte at offset 9)";
        assert_eq!(refusal(config_patch(b"{\"ttl\": \"\xff\"}")), (400, expected.to_owned()));
    }

    #[test]
    fn a_bad_schedule_is_refused_at_the_boundary_naming_the_value() {
        // Issue 12: this schedule panicked the HA loop.
        let err = restart_request(r#"{"schedule": "2030-01-01T12:3é"}"#.as_bytes(), SystemTime::UNIX_EPOCH)
            .unwrap_err();
        assert_eq!(err.status, 422);
        assert!(err.message.contains(r#""2030-01-01T12:3é""#), "{err:?}");
        let ok = restart_request(br#"{"schedule": "2030-01-01T12:30Z"}"#, SystemTime::UNIX_EPOCH);
        assert_eq!(ok.unwrap().schedule.as_deref(), Some("2030-01-01T12:30Z"));
    }

    #[test]
    fn postgres_version_and_timeout_are_read_as_patroni_reads_them() {
        let request = |body: &str| restart_request(body.as_bytes(), SystemTime::UNIX_EPOCH);
        let ok = request(r#"{"postgres_version": "16.4", "timeout": "2min"}"#).unwrap();
        assert_eq!((ok.postgres_version.as_deref(), ok.timeout), (Some("16.4"), Some(120)));
        assert_eq!(request(r#"{"timeout": 30}"#).unwrap().timeout, Some(30));
        for (body, field) in [
            (r#"{"timeout": 0}"#, "timeout"),
            (r#"{"timeout": "soon"}"#, "timeout"),
            (r#"{"postgres_version": "9.6"}"#, "postgres_version"),
            (r#"{"postgres_version": 16}"#, "postgres_version"),
        ] {
            let (status, message) = refusal(request(body));
            assert!(status == 400 && message.starts_with(field), "{body}: {message}");
        }
    }
}
