//! Files of a database server that the agent, possibly root, touches in directories the server's OS user
//! owns: without following a symbolic link planted there. Shared by the engines' adapters.

use std::fs;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How much of a server log's end [`log_tail`] reads.
const LOG_TAIL_BYTES: u64 = 1200;

/// Refuses a data directory that is itself a symbolic link: its owner could point it anywhere between two
/// operations of the agent, which writes, gives away and deletes files in it. The error names `key`, the
/// setting to change.
pub(crate) fn refuse_symlinked_data_dir(data: &Path, key: &str) -> io::Result<()> {
    match fs::symlink_metadata(data) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target =
                fs::canonicalize(data).map_or_else(|_| "its target".to_string(), |t| t.display().to_string());
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "data directory {} is a symbolic link, which the agent refuses; set {key} to {target}",
                    data.display()
                ),
            ))
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(data, e)),
        _ => Ok(()),
    }
}

/// Deletes everything inside `dir`, keeping `dir` itself; refuses a `dir` that is a symbolic link (naming
/// `key`, as [`refuse_symlinked_data_dir`]). Links
/// inside are removed, not followed: `DirEntry::file_type` does not follow them, nor does
/// `fs::remove_dir_all` (it works through directory descriptors since Rust 1.58.1, CVE-2022-21658).
pub(crate) fn remove_contents(dir: &Path, key: &str) -> io::Result<()> {
    refuse_symlinked_data_dir(dir, key)?;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(with_path(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| with_path(dir, e))?;
        let path = entry.path();
        if entry.file_type().map_err(|e| with_path(&path, e))?.is_dir() {
            fs::remove_dir_all(&path).map_err(|e| with_path(&path, e))?;
        } else {
            fs::remove_file(&path).map_err(|e| with_path(&path, e))?;
        }
    }
    Ok(())
}

/// Opens `path` as `options` say, plus `O_NOFOLLOW` and `flags`: a symbolic link there is an error naming
/// the path.
pub(crate) fn open_nofollow(path: &Path, options: &mut fs::OpenOptions, flags: i32) -> io::Result<fs::File> {
    options.custom_flags(libc::O_NOFOLLOW | flags).open(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is a symbolic link, which the agent does not follow; remove it", path.display()),
        ),
        _ => with_path(path, e),
    })
}

/// `e` with `path` in its message, keeping its kind.
pub(crate) fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The last lines of the server log (empty when it cannot be read, or is a symbolic link: the agent may be
/// root and its owner is not).
pub(crate) fn log_tail(log: &Path) -> String {
    let opened = open_nofollow(log, std::fs::OpenOptions::new().read(true), libc::O_NONBLOCK);
    let Ok(mut file) = opened else { return String::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES))).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_does_not_follow_a_planted_link() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (victim, log) = (dir.path().join("victim"), dir.path().join("node1.log"));
        std::fs::write(&victim, "root's secret\n").expect("victim");
        std::os::unix::fs::symlink(&victim, &log).expect("plant");
        assert_eq!(log_tail(&log), "");
        std::fs::remove_file(&log).expect("unplant");
        std::fs::write(&log, "one\n\ntwo\n").expect("log");
        assert_eq!(log_tail(&log), "one | two");
    }
}
