//! `vigil edit-config`: the change as a merge patch (`-s`, `-p`, `--apply`) or a whole new configuration
//! (`--replace`, or edited in `$EDITOR`), shown as a diff, confirmed, then `PATCH` or `PUT /config`.

use super::args::EditConfigArgs;
use super::client::{self, CHANGE_TIMEOUT};
use super::config_edit::{from_yaml, patch_from_pairs, to_yaml};
use super::{confirm, connect, diff, emit};
use reqwest::Method;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use vigil_api::merge_patch;

/// What is sent.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// `PATCH /config` with this merge patch.
    Patch(Value),
    /// `PUT /config` with this configuration.
    Replace(Value),
}

/// `vigil edit-config`.
pub async fn run(args: EditConfigArgs) -> Result<(), String> {
    let from_stdin = [&args.apply, &args.replace].into_iter().flatten().any(|f| f.as_os_str() == "-");
    if from_stdin && !args.force {
        return Err(
            "reading the change from stdin needs --force (stdin cannot also answer the question)".into()
        );
    }
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let cluster = client.cluster().await?;
    let scope = cluster["scope"].as_str().unwrap_or("cluster").to_string();
    let old = client.get("/config").await?;
    let change = if !args.set.is_empty() || !args.pg.is_empty() {
        Change::Patch(patch_from_pairs(&args.set, &args.pg)?)
    } else if let Some(file) = &args.apply {
        Change::Patch(from_yaml(&read(file)?)?)
    } else if let Some(file) = &args.replace {
        Change::Replace(from_yaml(&read(file)?)?)
    } else {
        Change::Replace(from_yaml(&edit_in_editor(&editor()?, &to_yaml(&old), &scope)?)?)
    };
    let new = match &change {
        Change::Patch(patch) => {
            let mut new = old.clone();
            merge_patch(&mut new, patch);
            new
        }
        Change::Replace(new) => new.clone(),
    };
    if new == old {
        emit("Not changed\n");
        return Ok(());
    }
    if !args.quiet {
        emit(&diff::unified(&to_yaml(&old), &to_yaml(&new)));
    }
    if !args.force && !confirm("Apply these changes?")? {
        return Err("aborted: the configuration was not changed".into());
    }
    let order = client::ordered(client::leader_first(&cluster), client.urls());
    let (method, body) = match &change {
        Change::Patch(patch) => (Method::PATCH, patch),
        Change::Replace(new) => (Method::PUT, new),
    };
    client.send(method, "/config", Some(body), &order, CHANGE_TIMEOUT).await?;
    emit("Configuration changed\n");
    Ok(())
}

/// A file's text, or stdin's for `-`.
fn read(file: &Path) -> Result<String, String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// `$EDITOR`, else `editor` or `vi` when found in `PATH` (as patronictl).
fn editor() -> Result<String, String> {
    if let Some(editor) = std::env::var("EDITOR").ok().filter(|e| !e.trim().is_empty()) {
        return Ok(editor);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["editor", "vi"]
        .into_iter()
        .find(|name| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
        .map(str::to_owned)
        .ok_or_else(|| "EDITOR is not set, and neither editor nor vi is in PATH".to_string())
}

/// Lets the user edit `text` with the shell command `editor` (run as `editor FILE`, so `EDITOR` may
/// carry arguments) in a private temporary file; the edited text.
pub fn edit_in_editor(editor: &str, text: &str, scope: &str) -> Result<String, String> {
    let file = TempFile::create(scope, text)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("vigil-edit-config")
        .arg(&file.0)
        .status()
        .map_err(|e| format!("cannot start the editor ({editor}): {e}"))?;
    if !status.success() {
        return Err(format!("the editor ({editor}) failed ({status}): the configuration was not changed"));
    }
    std::fs::read_to_string(&file.0).map_err(|e| format!("cannot read the edited file: {e}"))
}

/// A temporary file only its owner can read, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn create(scope: &str, text: &str) -> Result<TempFile, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let safe: String =
            scope.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{safe}-config-{}-{nanos}.yaml", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let temp = TempFile(path);
        file.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", temp.0.display()))?;
        Ok(temp)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_edits_a_private_file_that_is_removed_afterwards() {
        let out =
            edit_in_editor("sed -i s/ttl:\\ 3/ttl:\\ 4/", "loop_wait: 1\nttl: 3\n", "a/b").expect("edited");
        assert_eq!(out, "loop_wait: 1\nttl: 4\n");
        let leftovers =
            std::fs::read_dir(std::env::temp_dir()).expect("tmp").filter_map(|e| e.ok()).any(|e| {
                e.file_name().to_string_lossy().starts_with(&format!("a_b-config-{}-", std::process::id()))
            });
        assert!(!leftovers);
    }

    #[test]
    fn a_failing_editor_changes_nothing() {
        let err = edit_in_editor("false", "ttl: 3\n", "s").expect_err("failed");
        assert!(err.starts_with("the editor (false) failed"), "{err}");
    }
}
