//! Manual pages: `vigil.1` and one page per subcommand (`vigil-list.1`, `vigil-members-add.1`, …),
//! written by `vigil man DIR` for the packages to install.

use std::path::Path;

/// Writes the manual pages of `app` (the whole `vigil` command line) into `dir`; the files written.
pub fn write_man_pages(app: clap::Command, dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut app = app;
    app.build();
    let mut written = Vec::new();
    write_pages(&app, app.get_name(), dir, &mut written)?;
    Ok(written)
}

/// Writes `command`'s page as `<name>.1`, then its visible subcommands' as `<name>-<sub>.1`.
fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> Result<(), String> {
    let file = format!("{name}.1");
    let page = command.clone().name(name.to_string());
    let mut text = Vec::new();
    clap_mangen::Man::new(page).render(&mut text).map_err(|e| format!("cannot render {file}: {e}"))?;
    let path = dir.join(&file);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    written.push(file);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_command_gets_a_page() {
        use clap::Subcommand;
        let app = super::super::CtlCommand::augment_subcommands(clap::Command::new("vigil"));
        let dir = tempfile::tempdir().expect("dir");
        let written = write_man_pages(app, dir.path()).expect("pages");
        for page in ["vigil.1", "vigil-list.1", "vigil-query.1", "vigil-members-add.1"] {
            assert!(written.iter().any(|w| w == page), "{page} missing from {written:?}");
        }
        let list = std::fs::read_to_string(dir.path().join("vigil-list.1")).expect("page");
        assert!(list.contains(".TH vigil-list 1") && list.contains("timestamp"), "{list}");
    }
}
