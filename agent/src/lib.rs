//! The Vigil agent: it runs beside one database server, keeps it in the role the cluster agreed on, and
//! serves the REST API.

pub mod db;
pub mod config;
pub mod ha;
pub mod member;
