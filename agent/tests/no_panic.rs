//! No input from the network, the store, a configuration file or the environment can panic an agent
//! (issue 12): every parser of external input answers an error, never a panic, on arbitrary input. The
//! REST bodies go through what the server runs (`vigil_api::body`, then the agent's own checks).

use axum::http::Uri;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use vigil_agent::config::{env, Config, DynamicConfig};
use vigil_agent::ha::{cluster_view, dynamic_or_last_good};
use vigil_agent::management::patched_config;
use vigil_agent::member::MemberRecord;
use vigil_api::{body, parse_lsn, parse_size, schedule_for_request, HealthQuery, Schedule};
use vigil_dcs::{ClusterState, Command, Condition, Key, MemberName};

/// Keys the parsers know, so that generated objects reach past "unknown field".
const KEYS: &[&str] = &[
    "ttl",
    "loop_wait",
    "retry_timeout",
    "safety_margin",
    "primary_start_timeout",
    "maximum_lag_on_failover",
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "pause",
    "postgresql",
    "parameters",
    "use_slots",
    "leader",
    "candidate",
    "scheduled_at",
    "allow_data_loss",
    "role",
    "restart_pending",
    "schedule",
    "force",
    "from_leader",
    "conn_url",
    "api_url",
    "state",
    "host",
    "port",
    "position",
    "xlog_location",
    "replay_lsn",
    "timeline",
    "tags",
    "pending_restart_reason",
];

/// Numbers at the edges: the ones that overflowed Duration and Instant arithmetic.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MAX)),
        Just(Value::from(1e300)),
        Just(Value::from(18_446_744_073.709_553)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[0-9:.TZ+é -]{0,24}", "[0-9]{1,25}(ms|s|m|h|d)?"]
}

/// Any JSON value, objects keyed mostly by [`KEYS`].
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        text().prop_map(Value::from)
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        let key =
            prop_oneof![4 => proptest::sample::select(KEYS).prop_map(str::to_owned), 1 => any::<String>()];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bytes a client could send: JSON, or anything at all.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![json().prop_map(|v| v.to_string().into_bytes()), prop::collection::vec(any::<u8>(), 0..128)]
}

/// Every error a body reader gives is a client error.
fn client_error<T>(result: Result<T, vigil_api::ApiError>) -> Option<T> {
    result.map_err(|e| assert!((400..500).contains(&e.status), "{e:?}")).ok()
}

fn state_with(key: Key, value: Value) -> ClusterState {
    let mut state = ClusterState::default();
    state.apply(1, &Command::Put { key, value, condition: Condition::Always, ttl_ms: None });
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rest_bodies_of_every_mutating_endpoint(bytes in body_bytes(), replace in any::<bool>(), stored in json()) {
        let now = SystemTime::now();
        if let Some(patch) = client_error(body::config_patch(&bytes)) {
            let bootstrap = DynamicConfig::default();
            for current in [None, Some(&stored)] {
                client_error(patched_config(current, &bootstrap, &patch, replace));
            }
        }
        if let Some(request) = client_error(body::switchover_request(&bytes)) {
            if let Some(at) = &request.scheduled_at {
                client_error(schedule_for_request(at, "switchover", now));
            }
        }
        client_error(body::restart_request(&bytes, now));
        client_error(body::reinitialize_request(&bytes));
        client_error(body::no_parameters(&bytes));
    }

    #[test]
    fn health_check_query_strings(
        pairs in prop::collection::vec(
            (prop_oneof![Just("lag".to_owned()), Just("min_lsn".to_owned()), Just("mode".to_owned()),
                Just("replication_state".to_owned()), Just("tag_x".to_owned()), "[a-z_%é]{0,8}"],
             prop_oneof![text(), "(%[0-9A-F]{2}){0,6}", "[0-9A-Fa-f]{0,10}/[0-9A-Fa-f]{0,10}"]),
            0..5),
        raw in any::<String>(),
    ) {
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for q in [query.join("&"), raw.clone()] {
            if let Ok(uri) = Uri::try_from(format!("/replica?{q}")) {
                let _ = HealthQuery::from_uri(&uri);
            }
        }
        let _ = (parse_size(&raw), parse_lsn(&raw));
    }

    #[test]
    fn schedules(text in prop_oneof![any::<String>(), "20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]?.{0,4}"]) {
        let _ = Schedule::parse(&text);
        client_error(schedule_for_request(&text, "restart", SystemTime::UNIX_EPOCH));
    }

    #[test]
    fn dynamic_config_json_and_the_store(value in json(), raw in any::<String>()) {
        let _ = DynamicConfig::from_json_str(&raw);
        let _ = DynamicConfig::from_json_str(&value.to_string());
        let last_good = DynamicConfig { ttl: Duration::from_secs(5), ..DynamicConfig::default() };
        let taken = dynamic_or_last_good(&state_with(Key::Config, value), &last_good, &DynamicConfig::default());
        prop_assert!(taken.validate().is_ok(), "an unusable stored config was taken: {taken:?}");
    }

    #[test]
    fn member_records(value in json()) {
        let name = MemberName::new("node1").expect("name");
        let view = cluster_view(&state_with(Key::Member(name.clone()), value.clone()));
        if let Ok(record) = serde_json::from_value::<MemberRecord>(value) {
            let _ = record.view();
            prop_assert!(view.members.contains_key(&name));
        }
    }

    #[test]
    fn the_yaml_config(raw in any::<String>(), ttl in json(), loop_wait in json()) {
        let _ = Config::from_yaml_str(&raw, &|_| None);
        let timing = format!("bootstrap:\n  dcs:\n    ttl: {ttl}\n    loop_wait: {loop_wait}\n");
        let _ = Config::from_yaml_str(&format!("{BASE}{timing}"), &|_| None);
    }

    #[test]
    fn environment_overrides(values in prop::collection::btree_map(0..env::overrides().len(), text(), 0..6)) {
        let vars: BTreeMap<String, String> =
            values.into_iter().map(|(i, v)| (format!("{}{}", env::PREFIX, env::overrides()[i].name), v)).collect();
        let _ = Config::from_yaml_str(BASE, &|var| vars.get(var).cloned());
    }
}

/// A configuration every required key of which is set (its files need not exist).
const BASE: &str = "\
scope: demo
name: node1
restapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}
raft: {data_dir: /tmp/vigil-no-panic/raft, self_addr: 127.0.0.1:2222, partner_addrs: [127.0.0.1:2223]}
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /tmp/vigil-no-panic/pg
  bin_dir: /tmp/vigil-no-panic/bin
  pgpass: /tmp/vigil-no-panic/pgpass
  authentication:
    replication: {username: replicator, password: rep-pass}
    superuser: {username: postgres, password: su-pass}
";

#[test]
fn the_issue_12_inputs_are_refused_with_a_message() {
    // The schedule with a multi-byte character where the seconds go.
    let err = body::restart_request(r#"{"schedule": "2030-01-01T12:3é"}"#.as_bytes(), SystemTime::now())
        .unwrap_err();
    assert!(err.message.contains("2030-01-01T12:3é"), "{err:?}");
    // The PATCH that stopped every agent.
    let patch =
        body::config_patch(br#"{"ttl": 18446744073709551615, "loop_wait": 9223372036854775807}"#).unwrap();
    let err = patched_config(None, &DynamicConfig::default(), &patch, false).unwrap_err();
    assert_eq!(err.status, 400);
    assert!(err.message.contains("ttl: 18446744073709551615000 ms is more than the maximum"), "{err:?}");
    // An array where an object is expected.
    assert_eq!(body::config_patch(b"[]").unwrap_err().status, 400);
    // retry_timeout near u64::MAX.
    let patch = body::config_patch(br#"{"retry_timeout": 18446744073709551615}"#).unwrap();
    let err = patched_config(None, &DynamicConfig::default(), &patch, false).unwrap_err();
    assert!(err.message.contains("exceeds ttl"), "{err:?}");
}
