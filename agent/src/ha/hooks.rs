//! The operator's commands attached to role changes, as Patroni runs them:
//!
//! - `postgresql.pre_promote`: run before a promotion, awaited, bounded by [`PRE_PROMOTE_TIMEOUT`]; a
//!   non-zero exit (or the timeout) cancels the promotion. Arguments: the candidate (this member), the
//!   old primary (the last lease holder this agent saw, empty when it saw none) and the new fencing token.
//! - `postgresql.callbacks.on_*`: run in the background with Patroni's arguments `<action> <role> <scope>`,
//!   each bounded by [`CALLBACK_TIMEOUT`]; a failure is logged, nothing else.
//!
//! Each command is a shell command line (`sh -c`), the arguments appended; the environment carries
//! `VIGIL_FENCING_TOKEN` (empty when no lease is held) and, for `pre_promote`, `VIGIL_CANDIDATE` and
//! `VIGIL_OLD_PRIMARY`; the agent's own `VIGIL_*` variables are withheld. A command that overruns is
//! killed with its whole process group.

use crate::config::{env, Callbacks};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinSet;
use vigil_dcs::{FencingToken, MemberName};

/// How long `pre_promote` may run before the promotion is cancelled.
pub const PRE_PROMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a callback may run before it is killed.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(60);

/// A callback event (Patroni's `CallbackAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// The database started.
    OnStart,
    /// The database stopped.
    OnStop,
    /// The database was restarted through the API.
    OnRestart,
    /// The configuration was reloaded through the API.
    OnReload,
    /// The database was promoted or demoted.
    OnRoleChange,
}

impl Callback {
    /// The action's name, the callback's first argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Callback::OnStart => "on_start",
            Callback::OnStop => "on_stop",
            Callback::OnRestart => "on_restart",
            Callback::OnReload => "on_reload",
            Callback::OnRoleChange => "on_role_change",
        }
    }
}

/// The configured hooks of one member; the running callbacks are owned here (killed when it is dropped).
#[derive(Default)]
pub struct Hooks {
    scope: String,
    pre_promote: Option<String>,
    callbacks: Callbacks,
    running: Mutex<JoinSet<()>>,
}

impl Hooks {
    /// The hooks of `postgresql.pre_promote` and `postgresql.callbacks` for the cluster `scope`.
    pub fn new(scope: &str, pre_promote: Option<String>, callbacks: Callbacks) -> Hooks {
        Hooks { scope: scope.to_owned(), pre_promote, callbacks, running: Mutex::default() }
    }

    /// Runs `pre_promote` (when configured) and waits for it: `Err` says why the promotion must not
    /// happen.
    pub async fn pre_promote(
        &self,
        candidate: &MemberName,
        old_primary: Option<&MemberName>,
        token: FencingToken,
    ) -> Result<(), String> {
        let Some(command) = &self.pre_promote else { return Ok(()) };
        let old = old_primary.map(MemberName::to_string).unwrap_or_default();
        let (candidate, token) = (candidate.to_string(), token.to_string());
        let env = [
            ("VIGIL_FENCING_TOKEN", token.as_str()),
            ("VIGIL_CANDIDATE", candidate.as_str()),
            ("VIGIL_OLD_PRIMARY", old.as_str()),
        ];
        let args = [candidate.as_str(), old.as_str(), token.as_str()];
        run("pre_promote", command, &args, &env, PRE_PROMOTE_TIMEOUT).await
    }

    /// Starts the callback for `event` (when configured) in the background with `role`; never waits.
    pub fn callback(&self, event: Callback, role: &str, token: Option<FencingToken>) {
        let command = match event {
            Callback::OnStart => &self.callbacks.on_start,
            Callback::OnStop => &self.callbacks.on_stop,
            Callback::OnRestart => &self.callbacks.on_restart,
            Callback::OnReload => &self.callbacks.on_reload,
            Callback::OnRoleChange => &self.callbacks.on_role_change,
        };
        let Some(command) = command.clone() else { return };
        let (role, scope) = (role.to_owned(), self.scope.clone());
        let token = token.map(|t| t.to_string()).unwrap_or_default();
        let Ok(mut running) = self.running.lock() else { return };
        while running.try_join_next().is_some() {} // forget the finished ones
        running.spawn(async move {
            let args = [event.as_str(), role.as_str(), scope.as_str()];
            let env = [("VIGIL_FENCING_TOKEN", token.as_str())];
            match run(event.as_str(), &command, &args, &env, CALLBACK_TIMEOUT).await {
                Ok(()) => tracing::info!(callback = event.as_str(), %role, %token, "callback done"),
                Err(why) => {
                    tracing::warn!(callback = event.as_str(), %role, %token, reason = %why, "callback failed")
                }
            }
        });
    }
}

/// Runs `command args…` through `sh -c` in its own process group, at most `timeout`; `Err` says why it
/// failed (exit status and the end of its output, or the timeout).
pub(crate) async fn run(
    what: &str,
    command: &str,
    args: &[&str],
    vars: &[(&str, &str)],
    timeout: Duration,
) -> Result<(), String> {
    run_with(what, command, args, vars, Some(timeout), |_| {}).await
}

/// [`run`] with `prepare` applied to the child first (the user it runs as, more environment), and no
/// bound when `timeout` is `None`.
pub(crate) async fn run_with(
    what: &str,
    command: &str,
    args: &[&str],
    vars: &[(&str, &str)],
    timeout: Option<Duration>,
    prepare: impl FnOnce(&mut tokio::process::Command),
) -> Result<(), String> {
    let mut child = tokio::process::Command::new("sh");
    env::withhold(child.as_std_mut());
    child
        .arg("-c")
        .arg(format!("{command} \"$@\""))
        .arg(what) // $0
        .args(args)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    prepare(&mut child);
    let child = child.spawn().map_err(|e| format!("{command:?} could not be started: {e}"))?;
    let pid = child.id();
    let waited = child.wait_with_output();
    let outcome = match timeout {
        Some(timeout) => tokio::time::timeout(timeout, waited).await.ok(),
        None => Some(waited.await),
    };
    match outcome {
        Some(Ok(out)) if out.status.success() => Ok(()),
        Some(Ok(out)) => {
            let text = String::from_utf8_lossy(if out.stderr.is_empty() { &out.stdout } else { &out.stderr })
                .trim()
                .to_owned();
            let tail: String = text.lines().last().unwrap_or_default().chars().take(200).collect();
            Err(format!("{command:?} exited with {}: {tail:?}", out.status))
        }
        Some(Err(e)) => Err(format!("{command:?} could not be waited for: {e}")),
        None => {
            if let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
                // SAFETY: killpg on the process group this child leads (process_group(0) above); the
                // child itself is killed and reaped when dropped (kill_on_drop).
                unsafe { libc::killpg(pid, libc::SIGKILL) };
            }
            Err(format!("{command:?} did not finish within {timeout:?}: killed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> MemberName {
        MemberName::new(n).unwrap()
    }

    #[tokio::test]
    async fn pre_promote_gets_its_arguments_and_environment_and_a_failure_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let command = format!(
            "f() {{ echo \"$@ $VIGIL_CANDIDATE $VIGIL_OLD_PRIMARY $VIGIL_FENCING_TOKEN\" > {}; }}; f",
            out.display()
        );
        let hooks = Hooks::new("demo", Some(command), Callbacks::default());
        hooks.pre_promote(&name("node2"), Some(&name("node1")), FencingToken(42)).await.unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "node2 node1 42 node2 node1 42\n");

        let failing = Hooks::new("demo", Some("echo no >&2; exit 3; :".into()), Callbacks::default());
        let why = failing.pre_promote(&name("node2"), None, FencingToken(42)).await.unwrap_err();
        assert!(why.contains("exit status: 3") && why.contains("\"no\""), "{why}");
        assert_eq!(Hooks::default().pre_promote(&name("node2"), None, FencingToken(1)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_slow_command_is_killed_at_its_timeout() {
        let started = std::time::Instant::now();
        let why = run("test", "sleep 30; :", &[], &[], Duration::from_millis(200)).await.unwrap_err();
        assert!(why.contains("did not finish within"), "{why}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn callbacks_run_in_the_background_with_action_role_scope_and_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let command = format!("f() {{ echo \"$@ $VIGIL_FENCING_TOKEN\" >> {}; }}; f", out.display());
        let callbacks = Callbacks { on_role_change: Some(command), ..Default::default() };
        let hooks = Hooks::new("demo", None, callbacks);
        hooks.callback(Callback::OnStart, "primary", None); // not configured: nothing
        hooks.callback(Callback::OnRoleChange, "primary", Some(FencingToken(9)));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&out).is_ok_and(|t| t.ends_with('\n')) {
            assert!(std::time::Instant::now() < deadline, "the callback did not run");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "on_role_change primary demo 9\n");
    }
}
