//! The Vigil agent: it runs beside one database server, keeps it in the role the cluster agreed on, and
//! serves the REST API. The `vigil` binary (`src/main.rs`) is the agent and the control tool in one.
//!
//! Each cycle the HA loop observes the database and the cluster store, calls the pure
//! [`ha::decide`] (from the `vigil-policy` crate, which has no I/O dependencies), and carries out the
//! actions it returns; ARCHITECTURE.md at the repository root
//! describes the data path and the lease rules.
//!
//! | module | what it is |
//! |---|---|
//! | [`cli`] | the control tool (`vigil list`, `switchover`, `edit-config`, …), patronictl's commands over the REST API |
//! | [`config`] | the YAML configuration (Patroni's shape), `VIGIL_*` overrides, validation, the dynamic settings |
//! | [`daemon`] | `vigil agent`: starts the store node, the REST API and the HA loop, stops them on SIGTERM |
//! | [`db`] | the engine-neutral [`db::Database`] trait and positions; [`db::postgres`] and [`db::mariadb`] implement it; [`db::lifeline`], the watcher that ends the server when its agent dies |
//! | [`demo`] | `vigil demo`: a local cluster of PostgreSQL nodes with their agents, for newcomers |
//! | [`ha`] | the HA loop: observes, calls the policy ([`ha::decide`], re-exported from `vigil-policy`), acts, publishes; hooks, watchdog guard |
//! | [`haproxy`] | the write path pushed to HAProxy's Runtime API the moment this member starts or stops leading |
//! | [`kubernetes`] | the pod labels that route clients to the primary in Kubernetes |
//! | [`management`] | the agent's side of the REST management routes (`/cluster`, `/config`, switchover, …) |
//! | [`member`] | the member record each agent publishes in the store (Patroni's shape) |
//! | [`os_user`] | the OS account PostgreSQL runs as, looked up through NSS |
//! | [`status`] | the agent's latest status, shared with the REST API's health checks |

pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod demo;
pub mod ha;
pub mod haproxy;
pub mod kubernetes;
pub mod logging;
pub mod management;
pub mod member;
pub mod os_user;
pub mod raft_entry;
pub mod status;
pub mod witness;
