//! Server parameters that run commands or load code as the postgres OS user, or make the server read or
//! write files of the caller's choosing (issue 13). Only a member's own file (`postgresql.parameters` in its
//! YAML) may set them: whoever can write that file can already run code on that server. The cluster-wide
//! dynamic configuration cannot: it is written by `PATCH /config` and carried by the store to every member,
//! so one call, or one forged store entry, would run a command on every database server.

use std::collections::BTreeMap;

/// Refused by exact name (lowercase): the commands PostgreSQL runs through a shell, the libraries it loads
/// (`jit_provider` is a file name under `$libdir`, so `../` reaches anywhere), the library search path,
/// and the files it writes where told (the server log, the pid file).
const NAMES: &[&str] = &[
    "archive_command",
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "ssl_passphrase_command",
    "archive_library",
    "dynamic_library_path",
    "jit_provider",
    "log_directory",
    "log_filename",
    "external_pid_file",
];

/// Refused by prefix: `include`, `include_dir`, `include_if_exists` (postgresql.conf directives that read
/// another file as configuration) and `unix_socket_*` (where the server creates sockets, and for whom).
const PREFIXES: &[&str] = &["include", "unix_socket_"];

/// Refused by suffix: `shared_`, `session_` and `local_preload_libraries`.
const SUFFIXES: &[&str] = &["_preload_libraries"];

/// Why these parameters are refused and where they belong, for error messages and logs.
pub(crate) const ONLY_FROM_OWN_FILE: &str = "can run commands or load code as the postgres OS user, so they \
    are refused cluster-wide: set them in postgresql.parameters of each member's own file";

/// Whether only a member's own file may set parameter `name` (case-insensitive, as PostgreSQL reads names).
pub(crate) fn is_unsafe(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    NAMES.contains(&name.as_str())
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The entries of `parameters` that only a member's own file may set.
pub(crate) fn unsafe_in(parameters: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    parameters.iter().filter(|(name, _)| is_unsafe(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns_match_in_any_case() {
        let refused = [
            "archive_command",
            "ARCHIVE_COMMAND",
            "Restore_Command",
            "archive_cleanup_command",
            "recovery_end_command",
            "ssl_passphrase_command",
            "archive_library",
            "shared_preload_libraries",
            "session_preload_libraries",
            "Local_Preload_Libraries",
            "dynamic_library_path",
            "jit_provider",
            "log_directory",
            "log_filename",
            "external_pid_file",
            "include",
            "include_dir",
            "INCLUDE_IF_EXISTS",
            "unix_socket_directories",
            "unix_socket_group",
            "unix_socket_permissions",
            " archive_command ",
        ];
        for name in refused {
            assert!(is_unsafe(name), "{name:?} accepted");
        }
        let accepted = [
            "work_mem",
            "shared_buffers",
            "archive_mode",
            "archive_timeout",
            "log_min_duration_statement",
            "log_statement",
            "ssl",
            "jit",
            "max_connections",
            "pg_stat_statements.track",
            "unix_socket",
        ];
        for name in accepted {
            assert!(!is_unsafe(name), "{name:?} refused");
        }
    }

    #[test]
    fn unsafe_in_lists_only_the_refused_entries() {
        let parameters: BTreeMap<String, String> =
            [("work_mem", "8MB"), ("Archive_Command", "cp %p /a/%f"), ("include_dir", "conf.d")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let names: Vec<&str> = unsafe_in(&parameters).map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Archive_Command", "include_dir"]);
    }
}
