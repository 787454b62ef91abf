//! The Vigil agent: it runs beside one database server, keeps it in the role the cluster agreed on, and
//! serves the REST API.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod demo;
pub mod ha;
pub mod management;
pub mod member;
pub mod os_user;
pub mod status;
