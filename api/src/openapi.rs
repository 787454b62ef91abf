//! `GET /openapi.json`: the OpenAPI 3.0 document of the whole REST API. The health, status, metrics and
//! document routes come from [`ROUTES`] (the table [`crate::router`] is built from); the management
//! routes, served by a separate router, from [`crate::MANAGEMENT_ROUTES`]; the backup stream from
//! [`crate::backup`].

use crate::backup::BACKUP_PATH;
use crate::management::MANAGEMENT_ROUTES;
use crate::routes::{Endpoint, ROUTES};
use serde_json::{json, Map, Value};

/// The OpenAPI 3.0 document of the REST API.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for &(path, endpoint) in ROUTES {
        let item = paths.entry(path).or_insert_with(|| json!({}));
        for method in endpoint.methods() {
            item[method.to_lowercase()] = served_operation(endpoint, method);
        }
    }
    for &(path, method, _, codes, summary) in MANAGEMENT_ROUTES {
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[method.to_lowercase()] = management_operation(path, method, codes, summary);
    }
    paths.insert(BACKUP_PATH.to_owned(), json!({ "get": backup_operation() }));
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Vigil REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Patroni-compatible health checks, status, metrics and management of a Vigil \
                member. Health checks are never authenticated; the other reads need basic auth when \
                restapi.read_authentication is set, changes when restapi.authentication is. HEAD and OPTIONS \
                answer the status line alone.",
        },
        "paths": paths,
        "components": components(),
    })
}

fn served_operation(endpoint: Endpoint, method: &str) -> Value {
    let body = method == "GET";
    let mut operation = match endpoint {
        Endpoint::Health(rule) => {
            let answer = |what: &str| match body {
                true => {
                    json!({ "description": what, "headers": fencing_header(), "content": json_of("NodeStatus") })
                }
                false => json!({ "description": what, "headers": fencing_header() }),
            };
            let params: Vec<Value> = rule.parameters().iter().map(|p| parameter(p)).collect();
            json!({
                "tags": ["health"],
                "summary": rule.summary(),
                "parameters": params,
                "responses": {
                    "200": answer("The check passes"),
                    "503": answer("The check fails"),
                    "400": error_response("A malformed query parameter", body),
                },
            })
        }
        Endpoint::Status => json!({
            "tags": ["status"],
            "summary": "This member's status (Patroni's GET /patroni), always 200",
            "responses": { "200": match body {
                true => json!({ "description": "The status", "headers": fencing_header(), "content": json_of("NodeStatus") }),
                false => json!({ "description": "The status line alone", "headers": fencing_header() }),
            } },
        }),
        Endpoint::Metrics => json!({
            "tags": ["status"],
            "summary": "Prometheus metrics: Patroni's names plus vigil_*",
            "responses": { "200": {
                "description": "Prometheus text format 0.0.4",
                "content": { "text/plain": { "schema": { "type": "string" } } },
            } },
        }),
        Endpoint::OpenApi => json!({
            "tags": ["status"],
            "summary": "This document",
            "responses": { "200": {
                "description": "The OpenAPI document",
                "content": { "application/json": { "schema": { "type": "object" } } },
            } },
        }),
    };
    if !matches!(endpoint, Endpoint::Health(_)) {
        operation["security"] = optional_basic_auth();
        operation["responses"]["401"] =
            error_response("Credentials missing or wrong (restapi.read_authentication is set)", body);
    }
    operation
}

fn backup_operation() -> Value {
    json!({
        "tags": ["replication"],
        "summary": "A physical copy of this member's database, streamed to a member cloning a replica \
            (MariaDB: mariadb-backup --stream=xbstream); needs the replication account as basic auth",
        "security": [{ "basicAuth": [] }],
        "responses": {
            "200": {
                "description": "The copy; a copy that fails midway ends the stream without its last chunk",
                "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } },
            },
            "401": error_response("The replication account is missing or wrong", true),
            "503": error_response("No copy can be made now: the error says why", true),
        },
    })
}

fn management_operation(path: &str, method: &str, codes: &[u16], summary: &str) -> Value {
    let mut responses = Map::new();
    // Patroni answers the reads and config writes with JSON, the actions with a text message.
    let reads_json = matches!(path, "/cluster" | "/history" | "/events" | "/config");
    for code in codes {
        let answer = match code {
            200 | 202 if reads_json => json!({ "description": "Done", "content": json_of("Any") }),
            200 | 202 => json!({
                "description": "Done (202: scheduled)",
                "content": { "text/plain": { "schema": { "type": "string" } } },
            }),
            401 => error_response("Credentials missing or wrong", true),
            403 => error_response("Not allowed: read-only credentials, address or certificate", true),
            413 => error_response("The request body is larger than 64 KiB", true),
            _ => error_response("Refused or failed: the error says why", true),
        };
        responses.insert(code.to_string(), answer);
    }
    let mut operation = json!({ "tags": ["management"], "summary": summary, "responses": responses });
    operation["security"] = optional_basic_auth();
    if let Some(body) = request_body(path, method) {
        operation["requestBody"] = json!({
            "required": method != "POST" || path != "/restart",
            "content": { "application/json": { "schema": body } },
        });
    }
    operation
}

fn request_body(path: &str, method: &str) -> Option<Value> {
    let object = |properties: Value| json!({ "type": "object", "properties": properties });
    Some(match (path, method) {
        ("/config", "PATCH" | "PUT") => json!({ "type": "object", "additionalProperties": true }),
        ("/switchover", "POST") => object(json!({
            "leader": { "type": "string" },
            "candidate": { "type": "string" },
            "scheduled_at": { "type": "string", "format": "date-time" },
        })),
        ("/failover", "POST") => object(json!({
            "candidate": { "type": "string" },
            "leader": { "type": "string" },
            "allow_data_loss": { "type": "boolean" },
        })),
        ("/restart", "POST") => object(json!({
            "restart_pending": { "type": "boolean" },
            "role": { "type": "string", "enum": ["primary", "replica"] },
            "postgres_version": { "type": "string", "description": "Restart only a server older than X.Y or X.Y.Z" },
            "timeout": {
                "oneOf": [{ "type": "integer", "minimum": 1 }, { "type": "string" }],
                "description": "Seconds (or 30s, 5min, 1h) the restart may take before it is reported failed",
            },
            "schedule": { "type": "string", "format": "date-time" },
        })),
        ("/reinitialize", "POST") => object(json!({
            "force": { "type": "boolean" },
            "from_leader": { "type": "boolean" },
        })),
        _ => return None,
    })
}

fn parameter(name: &str) -> Value {
    let (description, example) = match name {
        "lag" => ("Most bytes the replica may trail the primary: bytes or a size (16kB, 10MB, 1GB)", "10MB"),
        "min_lsn" => ("Vigil: the position the replica must have replayed (X/Y or bytes)", "0/3000060"),
        "replication_state" => ("The replication state the replica must be in", "streaming"),
        "mode" => ("apply (default: replayed position) or write (received position)", "apply"),
        _ => {
            return json!({
                "name": "tags",
                "in": "query",
                "description": "tag_<key>=<value>: the member's tag <key> must equal <value> (missing: 503)",
                "style": "form",
                "explode": true,
                "schema": { "type": "object", "additionalProperties": { "type": "string" } },
                "example": { "tag_zone": "a" },
            })
        }
    };
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": "string" },
        "example": example,
    })
}

fn json_of(schema: &str) -> Value {
    json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } })
}

fn error_response(description: &str, body: bool) -> Value {
    match body {
        true => json!({ "description": description, "content": json_of("Error") }),
        false => json!({ "description": description }),
    }
}

/// Basic auth, needed or not as the agent is configured.
fn optional_basic_auth() -> Value {
    json!([{ "basicAuth": [] }, {}])
}

fn components() -> Value {
    json!({
        "securitySchemes": { "basicAuth": { "type": "http", "scheme": "basic" } },
        "schemas": {
            "Any": {},
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": { "error": { "type": "string" } },
            },
            "NodeStatus": node_status_schema(),
        },
    })
}

/// The `X-Vigil-Fencing-Token` header of the health checks' and the status's answers.
fn fencing_header() -> Value {
    json!({ "X-Vigil-Fencing-Token": {
        "description": "The largest fencing token this member knows of: the current primary's lease as last \
            seen (the leading primary's own); absent before any lease was seen",
        "schema": { "type": "integer", "format": "int64" },
    } })
}

fn node_status_schema() -> Value {
    let int = json!({ "type": "integer", "format": "int64" });
    let string = json!({ "type": "string" });
    let flag = json!({ "type": "boolean", "description": "Present only when true" });
    let replication = json!({ "type": "array", "items": { "type": "object", "properties": {
        "usename": string, "application_name": string, "client_addr": string,
        "state": string, "sync_state": string, "sync_priority": int,
    } } });
    let vigil = json!({ "type": "object", "properties": {
        "fencing_token": int, "leader_fencing_token": int, "lease_remaining_ms": int, "last_decision": string,
        "why": string, "promotion_refused": string, "observed_leaderless": flag, "leaderless_after": int,
        "primary_optime": int, "position": string, "synchronous_mode": string, "sync_state": string,
        "failovers_total": int, "maximum_lag_on_failover": int,
        "diverged": { "type": "object", "properties": { "upstream": string, "extra": string } },
        "data_set_aside": string,
        "raft": { "type": "object", "properties": {
            "term": int, "leader": int, "voters": { "type": "array", "items": int },
        } },
    } });
    json!({
        "type": "object",
        "required": ["state", "role", "patroni"],
        "properties": {
            "state": string, "role": string, "postmaster_start_time": string,
            "server_version": int, "timeline": int, "replication_state": string,
            "xlog": { "type": "object", "properties": {
                "location": int, "received_location": int, "replayed_location": int,
                "replayed_timestamp": { "type": "string", "format": "date-time" }, "paused": { "type": "boolean" },
            } },
            "replication": replication,
            "sync_standby": flag, "quorum_standby": flag, "pause": flag, "pending_restart": flag,
            "cluster_unlocked": flag, "watchdog_failed": flag,
            "scheduled_restart": { "type": "object", "properties": {
                "schedule": { "type": "string", "format": "date-time" }, "role": string,
                "postgres_version": string, "restart_pending": { "type": "boolean" }, "timeout": int,
            } },
            "pending_restart_reason": { "type": "object", "additionalProperties": {
                "type": "object", "properties": { "old_value": string, "new_value": string },
            } },
            "dcs_last_seen": int, "database_system_identifier": string,
            "tags": { "type": "object", "additionalProperties": true },
            "patroni": { "type": "object", "properties": {
                "version": string, "scope": string, "name": string,
            } },
            "vigil": vigil,
        },
    })
}
