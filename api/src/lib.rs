//! Vigil's REST contract (Patroni-compatible health checks, status and management routes) and its typed
//! client. Built by the REST API issue; empty until then.
