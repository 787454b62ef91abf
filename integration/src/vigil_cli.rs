//! Running the `vigil` CLI as a user would: [`run`] starts the real binary and reports what it printed.

use crate::agents::vigil_binary;
use std::process::{Command, Stdio};

/// The variables that could point a run at a cluster or give it credentials: taken out, so that only
/// what a test passes counts.
const AMBIENT: &[&str] = &[
    "VIGIL_API",
    "VIGIL_API_USERNAME",
    "VIGIL_API_PASSWORD",
    "VIGIL_CTL_CONFIG_FILE",
    "PATRONICTL_CONFIG_FILE",
    "PGPASSWORD",
];

/// What one `vigil` run printed, and how it exited.
pub struct Run {
    /// Whether it exited with 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "success: {}\n--- stdout\n{}--- stderr\n{}", self.success, self.stdout, self.stderr)
    }
}

/// Runs `vigil args...` with `env` set and nothing on stdin (see [`AMBIENT`]).
pub async fn run(env: &[(&str, &str)], args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(vigil_binary());
        command.args(&args).stdin(Stdio::null());
        for name in AMBIENT {
            command.env_remove(name);
        }
        let output = command.envs(env).output().expect("run vigil");
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("vigil run")
}
