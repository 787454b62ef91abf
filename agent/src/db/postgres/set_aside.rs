//! Diverged data kept for the operator (`postgresql.remove_data_directory_on_*` false, Patroni's
//! default): the data directory is renamed to `<data_dir>.diverged-<UTC time>` next to it, and a fresh
//! one is made for the re-clone. Nothing deletes those directories: the operator does, once nothing in
//! them is needed.

use super::files::{with_path, DATA_DIR_KEY};
use super::PostgresSettings;
use crate::db::server_files::refuse_symlinked_data_dir;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

/// What follows the data directory's name in a set-aside directory's.
const MARK: &str = ".diverged-";

/// Renames the data directory to `<data_dir>.diverged-<YYYYmmddTHHMMSSZ>` (`-2`, `-3`… appended if
/// taken) and returns the new path; the data directory is then missing.
pub(crate) fn move_aside(s: &PostgresSettings, now: SystemTime) -> io::Result<PathBuf> {
    refuse_symlinked_data_dir(&s.data_dir, DATA_DIR_KEY)?;
    let stamp: String = vigil_policy::Schedule::from(now)
        .to_string()
        .chars()
        .take(19) // 2026-12-07T05:40:40
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let base = format!("{}{MARK}{stamp}Z", s.data_dir.display());
    let mut target = PathBuf::from(&base);
    for n in 2.. {
        if !target.exists() {
            break;
        }
        target = PathBuf::from(format!("{base}-{n}"));
    }
    fs::rename(&s.data_dir, &target).map_err(|e| {
        let why = format!(
            "{e} (rename it yourself, or set postgresql.remove_data_directory_on_rewind_failure and \
             remove_data_directory_on_diverged_timelines to remove diverged data instead)"
        );
        with_path(&s.data_dir, io::Error::new(e.kind(), why))
    })?;
    Ok(target)
}

/// The latest directory [`move_aside`] made that is still there.
pub(crate) fn latest(s: &PostgresSettings) -> Option<PathBuf> {
    let parent = s.data_dir.parent()?;
    let prefix = format!("{}{MARK}", s.data_dir.file_name()?.to_str()?);
    let names = fs::read_dir(parent).ok()?.filter_map(|e| e.ok()?.file_name().into_string().ok());
    // The UTC stamp sorts as the time does; a `-n` suffix sorts after its stamp.
    names.filter(|n| n.starts_with(&prefix)).max().map(|n| parent.join(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn data_is_renamed_with_the_time_and_the_latest_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = super::super::render::tests::settings();
        s.data_dir = dir.path().join("data");
        assert_eq!(latest(&s), None);
        fs::create_dir(&s.data_dir).unwrap();
        fs::write(s.data_dir.join("PG_VERSION"), "15\n").unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_085_240); // 2025-12-07T05:27:20Z
        let first = move_aside(&s, at).unwrap();
        assert_eq!(first, dir.path().join("data.diverged-20251207T052720Z"));
        assert_eq!(fs::read_to_string(first.join("PG_VERSION")).unwrap(), "15\n");
        assert!(!s.data_dir.exists());
        fs::create_dir(&s.data_dir).unwrap();
        let second = move_aside(&s, at).unwrap();
        assert_eq!(second, dir.path().join("data.diverged-20251207T052720Z-2"));
        assert_eq!(latest(&s), Some(second));
        fs::create_dir(&s.data_dir).unwrap();
        let later = move_aside(&s, at + Duration::from_secs(3600)).unwrap();
        assert_eq!(latest(&s), Some(later));
    }
}
