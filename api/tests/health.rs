//! The health checks: Patroni's 200/503 rules for every path, member and method, and their query
//! parameters.

mod common;

use axum::http::StatusCode;
use common::*;
use vigil_api::{Endpoint, NodeStatus, Rule, FENCING_TOKEN_HEADER, ROUTES};

const OK: StatusCode = StatusCode::OK;
const DOWN: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
const BAD: StatusCode = StatusCode::BAD_REQUEST;

#[tokio::test]
async fn every_health_path_answers_by_its_rule_for_every_member_and_method() {
    use Rule::*;
    const REPLICA: &[Rule] = &[Replica, ReadOnly, Async, Health, Liveness, Readiness];
    let leader: &[Rule] =
        &[Primary, Leader, ReadOnly, ReadOnlySync, ReadOnlyQuorum, Health, Liveness, Readiness];
    let cases = [
        ("leading primary", primary(), true, "", leader),
        ("primary without a lease", primary(), false, "", &[Health, Liveness]),
        ("replica", replica(), false, "", REPLICA),
        ("replica, lag=10MB", replica(), false, "?lag=10MB", REPLICA),
        ("stopped", stopped(), false, "", &[Liveness]),
        ("noloadbalance replica", noloadbalance(), false, "", &[Health, Liveness, Readiness]),
        ("lagging replica, no limit", lagging(), false, "", REPLICA),
        ("lagging replica, lag=10MB", lagging(), false, "?lag=10MB", &[Health, Liveness]),
        (
            "sync standby",
            sync_standby(),
            false,
            "",
            &[Replica, ReadOnly, Sync, ReadOnlySync, Health, Liveness, Readiness],
        ),
        (
            "quorum standby",
            quorum_standby(),
            false,
            "",
            &[Replica, ReadOnly, Quorum, ReadOnlyQuorum, Health, Liveness, Readiness],
        ),
    ];
    for (name, status, leading, query, passing) in cases {
        for &(path, endpoint) in ROUTES {
            let Endpoint::Health(rule) = endpoint else { continue };
            let expected = if passing.contains(&rule) { OK } else { DOWN };
            for method in ["GET", "HEAD", "OPTIONS"] {
                let answer = call(&status, leading, method, &format!("{path}{query}")).await;
                assert_eq!(answer.code, expected, "{name}: {method} {path}{query}");
                if method == "GET" {
                    let body: NodeStatus = serde_json::from_slice(&answer.body).expect("status JSON");
                    assert_eq!(body, status, "{name}: {method} {path}");
                } else {
                    assert!(answer.body.is_empty(), "{name}: {method} {path}: status line alone");
                }
            }
        }
    }
}

#[tokio::test]
async fn every_health_check_and_the_status_carry_the_newest_fencing_token_known() {
    let mut deposed = primary();
    deposed.vigil.leader_fencing_token = Some(12);
    let mut follower = replica();
    follower.vigil.leader_fencing_token = Some(7);
    let cases = [
        ("leading primary", primary(), true, "7"),
        ("primary without a lease", primary(), false, "7"),
        ("deposed primary that saw a newer lease", deposed, false, "12"),
        ("replica", follower, false, "7"),
    ];
    for (name, status, leading, token) in cases {
        for &(path, endpoint) in ROUTES {
            if !matches!(endpoint, Endpoint::Health(_) | Endpoint::Status) {
                continue;
            }
            for method in ["GET", "HEAD", "OPTIONS"] {
                let answer = call(&status, leading, method, path).await;
                let header = answer.headers.get(FENCING_TOKEN_HEADER).map(|v| v.to_str().expect("ASCII"));
                assert_eq!(header, Some(token), "{name}: {method} {path} ({})", answer.code);
            }
        }
    }
    let answer = call(&replica(), false, "GET", "/replica").await;
    assert_eq!(answer.code, OK);
    assert!(answer.headers.get(FENCING_TOKEN_HEADER).is_none(), "no lease seen yet: no header");
}

#[tokio::test]
async fn lag_reads_bytes_and_units() {
    let mut behind = replica();
    behind.xlog.replayed_location = Some(PRIMARY_AT - 16 * 1024);
    for (lag, expected) in [
        ("16384", OK),
        ("16383", DOWN),
        ("16kB", OK),
        ("15kB", DOWN),
        ("1MB", OK),
        ("1GB", OK),
        ("1TB", OK),
        ("16%20kB", OK),
        ("0", DOWN),
        ("", OK),
    ] {
        for path in ["/replica", "/read-only", "/async", "/readiness"] {
            assert_eq!(
                code(&behind, false, &format!("{path}?lag={lag}")).await,
                expected,
                "{path}?lag={lag}"
            );
        }
    }
    let mut unknown = behind.clone();
    unknown.vigil.primary_optime = None;
    assert_eq!(code(&unknown, false, "/replica?lag=0").await, OK, "no known primary position: not lagging");
}

#[tokio::test]
async fn a_malformed_lag_is_a_400_naming_the_parameter() {
    for lag in ["abc", "10mb", "-1", "1.2.3MB", "10XB", "99999999999999TB"] {
        for path in ["/replica", "/primary", "/readiness"] {
            let answer = call(&replica(), false, "GET", &format!("{path}?lag={lag}")).await;
            assert_eq!(answer.code, BAD, "{path}?lag={lag}");
            let error = answer.json()["error"].as_str().expect("an error message").to_owned();
            assert!(error.contains("lag"), "{error}");
        }
        for method in ["HEAD", "OPTIONS"] {
            let answer = call(&replica(), false, method, &format!("/replica?lag={lag}")).await;
            assert_eq!((answer.code, answer.body.is_empty()), (BAD, true), "{method} lag={lag}");
        }
    }
}

#[tokio::test]
async fn tag_filters_match_tags_as_text() {
    let replica = replica();
    for (query, expected) in [
        ("tag_zone=a", OK),
        ("tag_zone=b", DOWN),
        ("tag_zone=A", DOWN),
        ("tag_nofailover=false", OK),
        ("tag_nofailover=False", DOWN),
        ("tag_failover_priority=2", OK),
        ("tag_rack=1", DOWN),
        ("tag_zone=a&tag_rack=1", DOWN),
        ("tag_zone=a&tag_failover_priority=2", OK),
        ("tag_rack=", OK),
    ] {
        for path in ["/replica", "/read-only", "/async", "/health"] {
            assert_eq!(code(&replica, false, &format!("{path}?{query}")).await, expected, "{path}?{query}");
        }
    }
    // The leader checks, liveness and readiness ignore tag filters.
    for path in ["/primary", "/leader", "/liveness", "/readiness"] {
        assert_eq!(code(&primary(), true, &format!("{path}?tag_zone=b")).await, OK, "{path}");
    }
    assert_eq!(code(&primary(), true, "/read-only?tag_zone=b").await, DOWN);
}

#[tokio::test]
async fn min_lsn_asks_for_a_replayed_position() {
    let replica = replica(); // replayed 0/3000060
    for (min_lsn, expected) in [
        ("0/3000060", OK),
        ("0/3000000", OK),
        ("0/3000061", DOWN),
        ("1/0", DOWN),
        ("50331744", OK),
        ("50331745", DOWN),
    ] {
        for path in ["/replica", "/read-only"] {
            assert_eq!(
                code(&replica, false, &format!("{path}?min_lsn={min_lsn}")).await,
                expected,
                "{path} {min_lsn}"
            );
        }
    }
    assert_eq!(code(&primary(), true, "/read-only?min_lsn=1/0").await, OK, "the primary has every write");
    for bad in ["0x10", "1/", "G/0", "0/123456789", "later"] {
        let answer = call(&replica, false, "GET", &format!("/replica?min_lsn={bad}")).await;
        assert_eq!(answer.code, BAD, "{bad}");
        assert!(answer.json()["error"].as_str().expect("message").contains("min_lsn"), "{bad}");
    }
}

#[tokio::test]
async fn replication_state_and_readiness_mode() {
    let replica = replica();
    assert_eq!(code(&replica, false, "/replica?replication_state=streaming").await, OK);
    assert_eq!(code(&replica, false, "/replica?replication_state=in%20archive%20recovery").await, DOWN);

    let mut applying = replica.clone();
    applying.xlog.replayed_location = Some(PRIMARY_AT - 100);
    assert_eq!(code(&applying, false, "/readiness?lag=0").await, DOWN);
    assert_eq!(code(&applying, false, "/readiness?lag=0&mode=apply").await, DOWN);
    assert_eq!(code(&applying, false, "/readiness?lag=0&mode=write").await, OK);
    assert_eq!(code(&applying, false, "/readiness?lag=100").await, OK);
    assert_eq!(code(&applying, false, "/readiness?mode=sideways").await, BAD);

    let mut archive = replica.clone();
    archive.replication_state = Some("in archive recovery".into());
    assert_eq!(code(&archive, false, "/readiness").await, DOWN, "readiness wants streaming");
    assert_eq!(code(&archive, false, "/replica").await, OK, "/replica does not, unless asked");
}

#[tokio::test]
async fn sync_flags_count_only_in_their_synchronous_mode() {
    let mut stale = sync_standby();
    stale.vigil.synchronous_mode = Some("off".into());
    assert_eq!(code(&stale, false, "/sync").await, DOWN);
    assert_eq!(code(&stale, false, "/async").await, OK);
    let mut tagged = sync_standby();
    tagged.tags.insert("noloadbalance".into(), true.into());
    assert_eq!(code(&tagged, false, "/sync").await, DOWN, "sync reuses replica_ok");
}

#[tokio::test]
async fn the_status_page_always_answers() {
    for status in [primary(), replica(), stopped()] {
        for path in ["/patroni", "/status"] {
            let answer = call(&status, false, "GET", path).await;
            assert_eq!(answer.code, OK);
            assert_eq!(serde_json::from_slice::<NodeStatus>(&answer.body).expect("status"), status);
            for method in ["HEAD", "OPTIONS"] {
                let answer = call(&status, false, method, path).await;
                assert_eq!((answer.code, answer.body.is_empty()), (OK, true), "{method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn readiness_allows_maximum_lag_on_failover_without_lag() {
    let mut behind = replica();
    behind.xlog.replayed_location = Some(PRIMARY_AT - 2048);
    assert_eq!(code(&behind, false, "/readiness").await, OK, "no limit known: any lag");
    behind.vigil.maximum_lag_on_failover = Some(1024);
    assert_eq!(code(&behind, false, "/readiness").await, DOWN, "beyond maximum_lag_on_failover");
    assert_eq!(code(&behind, false, "/readiness?lag=4kB").await, OK, "?lag= overrides it");
    behind.vigil.maximum_lag_on_failover = Some(4096);
    assert_eq!(code(&behind, false, "/readiness").await, OK);
}

/// A member whose HA loop has stopped running on time.
struct Stalled;

impl vigil_api::StatusSource for Stalled {
    fn status(&self) -> NodeStatus {
        primary()
    }
    fn is_leading_primary(&self) -> bool {
        true
    }
    fn loop_alive(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn liveness_fails_when_the_loop_is_late() {
    use axum::body::Body;
    use tower::ServiceExt;
    for method in ["GET", "HEAD", "OPTIONS"] {
        let request = axum::http::Request::builder().method(method).uri("/liveness").body(Body::empty());
        let app = vigil_api::router(std::sync::Arc::new(Stalled));
        let response = app.oneshot(request.expect("request")).await.expect("response");
        assert_eq!(response.status(), DOWN, "{method}");
    }
    assert_eq!(code(&primary(), true, "/liveness").await, OK, "a source without a loop is live");
}
