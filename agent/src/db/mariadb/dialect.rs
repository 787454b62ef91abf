//! The statements and option-file lines that differ between MariaDB 10.11 and MySQL 8 (8.0.26 and
//! later, whose replication words are `SOURCE`/`REPLICA`), in one place: the adapter says them through
//! the [`Dialect`] of `mysql.flavor`. Only MariaDB runs in the tests; MySQL's text is pinned by golden
//! tests, as no MySQL server can be installed on these machines.

use super::sql::quote;
use crate::config::Flavor;

/// How the adapter words what it says to its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dialect(Flavor);

/// The columns of the replica status that the adapter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StatusColumns {
    /// The upstream's host.
    pub host: &'static str,
    /// The upstream's port.
    pub port: &'static str,
    /// Whether the IO thread runs (`Yes`, `Connecting`, `No`).
    pub io_running: &'static str,
    /// Whether the SQL thread runs.
    pub sql_running: &'static str,
}

impl Dialect {
    /// The dialect of `flavor`.
    pub fn of(flavor: Flavor) -> Dialect {
        Dialect(flavor)
    }

    /// `mariadb` or `mysql`, for a word that differs.
    fn pick(self, mariadb: &'static str, mysql: &'static str) -> &'static str {
        match self.0 {
            Flavor::Mariadb => mariadb,
            Flavor::Mysql => mysql,
        }
    }

    /// Stops both replication threads.
    pub fn stop_replica(self) -> &'static str {
        self.pick("STOP SLAVE", "STOP REPLICA")
    }

    /// Stops fetching from the upstream, the relay log still applied.
    pub fn stop_io_thread(self) -> &'static str {
        self.pick("STOP SLAVE IO_THREAD", "STOP REPLICA IO_THREAD")
    }

    /// Starts both replication threads.
    pub fn start_replica(self) -> &'static str {
        self.pick("START SLAVE", "START REPLICA")
    }

    /// Starts fetching from the upstream.
    pub fn start_io_thread(self) -> &'static str {
        self.pick("START SLAVE IO_THREAD", "START REPLICA IO_THREAD")
    }

    /// Starts applying the relay log.
    pub fn start_sql_thread(self) -> &'static str {
        self.pick("START SLAVE SQL_THREAD", "START REPLICA SQL_THREAD")
    }

    /// Forgets the upstream and the relay log.
    pub fn reset_replica(self) -> &'static str {
        self.pick("RESET SLAVE ALL", "RESET REPLICA ALL")
    }

    /// The replica side's status.
    pub fn replica_status(self) -> &'static str {
        self.pick("SHOW SLAVE STATUS", "SHOW REPLICA STATUS")
    }

    /// The columns of [`Dialect::replica_status`] the adapter reads.
    pub fn status_columns(self) -> StatusColumns {
        StatusColumns {
            host: self.pick("Master_Host", "Source_Host"),
            port: self.pick("Master_Port", "Source_Port"),
            io_running: self.pick("Slave_IO_Running", "Replica_IO_Running"),
            sql_running: self.pick("Slave_SQL_Running", "Replica_SQL_Running"),
        }
    }

    /// The replicas connected to this server, with their `report_host` in column `Host`.
    pub fn replica_hosts(self) -> &'static str {
        self.pick("SHOW SLAVE HOSTS", "SHOW REPLICAS")
    }

    /// Points replication at `host:port` as `user`, positioned by GTID: MariaDB from its slave position,
    /// counting what it logged itself as replicated (`MASTER_DEMOTE_TO_SLAVE`, so that an upstream lacking
    /// some of it refuses this server instead of skipping it); MySQL by auto-positioning, which sends
    /// what its GTID set lacks.
    pub fn change_source(self, host: &str, port: u16, user: &str, password: &str) -> String {
        let (host, user, password) = (quote(host), quote(user), quote(password));
        match self.0 {
            Flavor::Mariadb => format!(
                "CHANGE MASTER TO MASTER_HOST = {host}, MASTER_PORT = {port}, MASTER_USER = {user}, \
                 MASTER_PASSWORD = {password}, MASTER_USE_GTID = slave_pos, MASTER_DEMOTE_TO_SLAVE = 1, \
                 MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1"
            ),
            Flavor::Mysql => format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST = {host}, SOURCE_PORT = {port}, SOURCE_USER = {user}, \
                 SOURCE_PASSWORD = {password}, SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, \
                 SOURCE_HEARTBEAT_PERIOD = 1"
            ),
        }
    }

    /// Makes the server read-only (MySQL: for `SUPER` accounts too, `super_read_only`, which implies
    /// `read_only`).
    pub fn read_only(self) -> &'static str {
        self.pick("SET GLOBAL read_only = 1", "SET GLOBAL super_read_only = 1")
    }

    /// Opens the server for writes (MySQL: turning `read_only` off turns `super_read_only` off too).
    pub fn writable(self) -> &'static str {
        "SET GLOBAL read_only = 0"
    }

    /// Sets how long a replica waits for its upstream.
    pub fn upstream_timeout(self, seconds: u64) -> String {
        format!("SET GLOBAL {} = {seconds}", self.pick("slave_net_timeout", "replica_net_timeout"))
    }

    /// A clean shutdown; MariaDB's waits until the connected replicas received everything logged.
    pub fn shutdown(self) -> &'static str {
        self.pick("SHUTDOWN WAIT FOR ALL SLAVES", "SHUTDOWN")
    }

    /// The prefixes of semi-synchronous replication's variables: the primary's side, the replica's side.
    fn semi_sync(self) -> (&'static str, &'static str) {
        match self.0 {
            Flavor::Mariadb => ("rpl_semi_sync_master", "rpl_semi_sync_slave"),
            Flavor::Mysql => ("rpl_semi_sync_source", "rpl_semi_sync_replica"),
        }
    }

    /// Whether commits wait for a replica's acknowledgement, as an SQL expression.
    pub fn waits_for_replicas(self) -> String {
        format!("@@global.{}_enabled", self.semi_sync().0)
    }

    /// Makes commits wait for a replica's acknowledgement, or not.
    pub fn wait_for_replicas(self, on: bool) -> String {
        format!("SET GLOBAL {}_enabled = {}", self.semi_sync().0, u8::from(on))
    }

    /// Makes a replica acknowledge what it receives, or not (from its next connection to the upstream).
    pub fn acknowledge(self, on: bool) -> String {
        format!("SET GLOBAL {}_enabled = {}", self.semi_sync().1, u8::from(on))
    }

    /// The query of the global status variable `name` (upper case, e.g. `RPL_SEMI_SYNC_MASTER_STATUS`).
    pub fn status(self, name: &str) -> String {
        let table = self.pick("information_schema.GLOBAL_STATUS", "performance_schema.global_status");
        format!("(SELECT VARIABLE_VALUE FROM {table} WHERE VARIABLE_NAME = '{name}')")
    }

    /// The names of the status variables: whether commits wait now, how many replicas acknowledge, and
    /// whether this replica acknowledges.
    pub fn semi_sync_status(self) -> [String; 3] {
        let (source, replica) = self.semi_sync();
        let upper = |prefix: &str, name: &str| format!("{prefix}_{name}").to_ascii_uppercase();
        [upper(source, "status"), upper(source, "clients"), upper(replica, "status")]
    }

    /// The option-file lines of semi-synchronous replication: commits wait for nothing until the agent
    /// says so, then once in the binary log (`AFTER_SYNC`), for as long as it takes (`timeout_ms`), with or
    /// without connected replicas; this server acknowledges nothing until its upstream turns it on.
    pub fn semi_sync_lines(self, timeout_ms: &str) -> Vec<(String, String)> {
        let (source, replica) = self.semi_sync();
        let on_off = |on: bool| if on { "ON" } else { "OFF" }.to_owned();
        vec![
            (format!("{source}_enabled"), on_off(false)),
            (format!("{source}_wait_point"), "AFTER_SYNC".to_owned()),
            (format!("{source}_wait_no_{}", self.pick("slave", "replica")), on_off(true)),
            (format!("{source}_timeout"), timeout_ms.to_owned()),
            (format!("{replica}_enabled"), on_off(false)),
        ]
    }

    /// The option-file lines of the replication invariants whose names differ: GTIDs in order (MariaDB:
    /// strict mode in the cluster's `domain`; MySQL: GTID mode, with only GTID-safe statements), replicas
    /// logging what they apply, replication started by the agent only (MySQL: read-only for `SUPER`
    /// accounts too), and replicas giving up on a silent upstream after `upstream_timeout_s`.
    pub fn option_lines(self, domain: u32, upstream_timeout_s: u64) -> Vec<(&'static str, String)> {
        let on = || "ON".to_owned();
        match self.0 {
            Flavor::Mariadb => vec![
                ("gtid_domain_id", domain.to_string()),
                ("gtid_strict_mode", on()),
                ("log_slave_updates", on()),
                ("skip_slave_start", on()),
                ("slave_net_timeout", upstream_timeout_s.to_string()),
            ],
            Flavor::Mysql => vec![
                ("gtid_mode", on()),
                ("enforce_gtid_consistency", on()),
                ("log_replica_updates", on()),
                ("skip_replica_start", on()),
                ("super_read_only", on()),
                ("replica_net_timeout", upstream_timeout_s.to_string()),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: Dialect = Dialect(Flavor::Mariadb);
    const MYSQL: Dialect = Dialect(Flavor::Mysql);

    #[test]
    fn mysql_8_statements_are_pinned() {
        let said = [
            MYSQL.stop_replica(),
            MYSQL.stop_io_thread(),
            MYSQL.start_replica(),
            MYSQL.start_sql_thread(),
            MYSQL.reset_replica(),
            MYSQL.replica_status(),
            MYSQL.replica_hosts(),
            MYSQL.read_only(),
            MYSQL.writable(),
            MYSQL.shutdown(),
        ];
        assert_eq!(
            said,
            [
                "STOP REPLICA",
                "STOP REPLICA IO_THREAD",
                "START REPLICA",
                "START REPLICA SQL_THREAD",
                "RESET REPLICA ALL",
                "SHOW REPLICA STATUS",
                "SHOW REPLICAS",
                "SET GLOBAL super_read_only = 1",
                "SET GLOBAL read_only = 0",
                "SHUTDOWN",
            ]
        );
        assert_eq!(
            MYSQL.change_source("db2", 3306, "repl", "it's"),
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST = 'db2', SOURCE_PORT = 3306, SOURCE_USER = 'repl', \
             SOURCE_PASSWORD = 'it\\'s', SOURCE_AUTO_POSITION = 1, SOURCE_CONNECT_RETRY = 1, \
             SOURCE_HEARTBEAT_PERIOD = 1"
        );
        assert_eq!(MYSQL.upstream_timeout(3), "SET GLOBAL replica_net_timeout = 3");
        let columns = MYSQL.status_columns();
        assert_eq!(
            [columns.host, columns.port, columns.io_running, columns.sql_running],
            ["Source_Host", "Source_Port", "Replica_IO_Running", "Replica_SQL_Running"]
        );
    }

    #[test]
    fn mysql_8_semi_synchronous_words_are_pinned() {
        assert_eq!(MYSQL.wait_for_replicas(true), "SET GLOBAL rpl_semi_sync_source_enabled = 1");
        assert_eq!(MYSQL.acknowledge(false), "SET GLOBAL rpl_semi_sync_replica_enabled = 0");
        assert_eq!(MYSQL.waits_for_replicas(), "@@global.rpl_semi_sync_source_enabled");
        assert_eq!(
            MYSQL.semi_sync_status(),
            ["RPL_SEMI_SYNC_SOURCE_STATUS", "RPL_SEMI_SYNC_SOURCE_CLIENTS", "RPL_SEMI_SYNC_REPLICA_STATUS"]
        );
        assert_eq!(
            MYSQL.status("RPL_SEMI_SYNC_SOURCE_STATUS"),
            "(SELECT VARIABLE_VALUE FROM performance_schema.global_status WHERE VARIABLE_NAME = \
             'RPL_SEMI_SYNC_SOURCE_STATUS')"
        );
        let lines: Vec<String> =
            MYSQL.semi_sync_lines("100").iter().map(|(name, value)| format!("{name} = {value}")).collect();
        assert_eq!(
            lines,
            [
                "rpl_semi_sync_source_enabled = OFF",
                "rpl_semi_sync_source_wait_point = AFTER_SYNC",
                "rpl_semi_sync_source_wait_no_replica = ON",
                "rpl_semi_sync_source_timeout = 100",
                "rpl_semi_sync_replica_enabled = OFF",
            ]
        );
        assert_eq!(MARIADB.semi_sync_status()[0], "RPL_SEMI_SYNC_MASTER_STATUS");
        assert_eq!(MARIADB.semi_sync_lines("1")[4], ("rpl_semi_sync_slave_enabled".into(), "OFF".into()));
    }

    #[test]
    fn mysql_8_option_lines_are_pinned() {
        let lines: Vec<String> =
            MYSQL.option_lines(0, 4).into_iter().map(|(name, value)| format!("{name} = {value}")).collect();
        assert_eq!(
            lines,
            [
                "gtid_mode = ON",
                "enforce_gtid_consistency = ON",
                "log_replica_updates = ON",
                "skip_replica_start = ON",
                "super_read_only = ON",
                "replica_net_timeout = 4",
            ]
        );
    }

    #[test]
    fn mariadb_keeps_its_own_words() {
        assert_eq!(MARIADB.reset_replica(), "RESET SLAVE ALL");
        assert_eq!(MARIADB.replica_status(), "SHOW SLAVE STATUS");
        assert_eq!(MARIADB.read_only(), "SET GLOBAL read_only = 1");
        assert_eq!(MARIADB.shutdown(), "SHUTDOWN WAIT FOR ALL SLAVES");
        assert_eq!(
            MARIADB.change_source("db2", 3306, "repl", "pw"),
            "CHANGE MASTER TO MASTER_HOST = 'db2', MASTER_PORT = 3306, MASTER_USER = 'repl', \
             MASTER_PASSWORD = 'pw', MASTER_USE_GTID = slave_pos, MASTER_DEMOTE_TO_SLAVE = 1, \
             MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1"
        );
        let names: Vec<&str> = MARIADB.option_lines(3, 4).into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "gtid_domain_id",
                "gtid_strict_mode",
                "log_slave_updates",
                "skip_slave_start",
                "slave_net_timeout"
            ]
        );
    }
}
