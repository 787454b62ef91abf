//! Issue 13, part 4: the OS user PostgreSQL runs as plants symbolic links where the agent (root here)
//! writes, gives away or deletes; their targets stay untouched.

use super::*;
use crate::db::postgres::Credentials;
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;

/// Not the agent's user: what the agent gives files to.
const PG: Owner = Owner { uid: 4242, gid: 4242 };
const VICTIM_TEXT: &str = "port = 5\nroot's secret\n";

/// A temp dir with `victim` (a root file outside the data directory's reach) and settings for `<dir>/pg/data`.
struct Setup {
    dir: tempfile::TempDir,
    victim: PathBuf,
    s: PostgresSettings,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let victim = dir.path().join("victim");
    fs::write(&victim, VICTIM_TEXT).expect("victim");
    let s = PostgresSettings {
        scope: "demo".into(),
        name: "node1".into(),
        data_dir: dir.path().join("pg/data"),
        bin_dir: "/bin".into(),
        listen_host: "*".into(),
        port: 5432,
        connect_host: "127.0.0.1".into(),
        superuser: Credentials {
            username: "postgres".into(),
            password: "pw".into(),
            peer_options: Default::default(),
        },
        replication: Credentials {
            username: "rep".into(),
            password: "pw".into(),
            peer_options: Default::default(),
        },
        rewind: None,
        parameters: Default::default(),
        own_files: Default::default(),
        files: Default::default(),
        config_dir: None,
        custom_conf: None,
        bin_name: Default::default(),
        pg_ctl_timeout: std::time::Duration::from_secs(60),
        before_stop: None,
        use_unix_socket: None,
        basebackup: vec![],
        clone_methods: vec![crate::config::CloneMethod::Basebackup],
        custom_bootstrap: None,
        post_bootstrap: None,
        initdb: vec![],
        pgpass: dir.path().join("home/.pgpass"),
        os_user: None,
        nostream: false,
    };
    fs::create_dir_all(&s.data_dir).expect("data dir");
    fs::create_dir_all(dir.path().join("home")).expect("home");
    Setup { dir, victim, s }
}

/// `victim` keeps its content, its owner (the agent's) and its mode.
fn assert_untouched(victim: &Path, mode: u32) {
    assert_eq!(fs::read_to_string(victim).expect("read victim"), VICTIM_TEXT, "victim's content changed");
    let meta = fs::metadata(victim).expect("victim");
    assert_eq!(meta.uid(), crate::os_user::current_uid(), "victim given away");
    assert_eq!(meta.mode() & 0o7777, mode, "victim's mode changed");
}

/// `path` is now a plain file owned by `uid`, not a link.
fn assert_real_file(path: &Path, uid: u32) {
    let meta = fs::symlink_metadata(path).expect("written");
    assert!(meta.file_type().is_file(), "{} is not a plain file", path.display());
    assert_eq!(meta.uid(), uid);
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").mode() & 0o7777
}

#[test]
fn the_password_file_replaces_a_planted_link() {
    let t = setup();
    let m = mode(&t.victim);
    symlink(&t.victim, &t.s.pgpass).expect("plant");
    write_pgpass(&t.s, Some(PG)).expect("write pgpass");
    assert_untouched(&t.victim, m);
    assert_real_file(&t.s.pgpass, PG.uid);
}

#[test]
fn postgresql_conf_replaces_a_planted_link() {
    let t = setup();
    let m = mode(&t.victim);
    let conf = t.s.data_dir.join("postgresql.conf");
    symlink(&t.victim, &conf).expect("plant");
    write_server_conf(&t.s, &Conf::Primary, &Runtime::default(), Some(PG)).expect("write");
    assert_untouched(&t.victim, m);
    assert_real_file(&conf, PG.uid);
}

#[test]
fn the_former_primary_marker_replaces_a_planted_link() {
    let t = setup();
    let m = mode(&t.victim);
    let marker = former_primary_marker(&t.s);
    symlink(&t.victim, &marker).expect("plant");
    mark_former_primary(&t.s, true).expect("mark");
    assert_untouched(&t.victim, m);
    assert_real_file(&marker, crate::os_user::current_uid());
}

#[test]
fn a_planted_server_log_link_is_refused_naming_the_path() {
    let t = setup();
    let m = mode(&t.victim);
    let log = log_path(&t.s);
    symlink(&t.victim, &log).expect("plant");
    let err = prepare_dirs(&t.s, Some(PG)).expect_err("a linked server log must be refused");
    assert!(err.to_string().contains(&log.display().to_string()), "{err}");
    assert_untouched(&t.victim, m);
}

#[test]
fn a_hard_linked_server_log_is_refused() {
    let t = setup();
    let m = mode(&t.victim);
    fs::hard_link(&t.victim, log_path(&t.s)).expect("plant");
    prepare_dirs(&t.s, Some(PG)).expect_err("a hard-linked server log must be refused");
    assert_untouched(&t.victim, m);
}

#[test]
fn a_planted_auto_conf_link_is_not_read() {
    let t = setup();
    let auto = t.s.data_dir.join("postgresql.auto.conf");
    symlink(&t.victim, &auto).expect("plant");
    let err = clean_auto_conf(&t.s, Some(PG)).expect_err("a linked postgresql.auto.conf must be refused");
    assert!(err.to_string().contains("postgresql.auto.conf"), "{err}");
    assert!(fs::symlink_metadata(&auto).expect("still there").file_type().is_symlink(), "victim copied in");
}

/// The data directory replaced by a link to `victim_dir` (a root directory with the victim file in it).
fn link_data_dir(t: &Setup) -> PathBuf {
    let victim_dir = t.dir.path().join("etc");
    fs::create_dir(&victim_dir).expect("victim dir");
    fs::set_permissions(&victim_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::copy(&t.victim, victim_dir.join("victim")).expect("copy");
    fs::remove_dir(&t.s.data_dir).expect("rm data");
    symlink(&victim_dir, &t.s.data_dir).expect("plant");
    victim_dir
}

#[test]
fn a_symlinked_data_directory_is_refused_and_its_target_untouched() {
    let t = setup();
    let victim_dir = link_data_dir(&t);
    let m = mode(&victim_dir.join("victim"));
    let err = prepare_dirs(&t.s, Some(PG)).expect_err("prepare_dirs");
    assert!(err.to_string().contains(&t.s.data_dir.display().to_string()), "{err}");
    assert!(err.to_string().contains("postgresql.data_dir"), "{err}");
    write_server_conf(&t.s, &Conf::Primary, &Runtime::default(), Some(PG)).expect_err("write conf");
    remove_contents(&t.s.data_dir, DATA_DIR_KEY).expect_err("remove_contents");
    let meta = fs::metadata(&victim_dir).expect("victim dir");
    assert_ne!(meta.uid(), PG.uid, "victim dir given away");
    assert_eq!(meta.mode() & 0o7777, 0o755, "victim dir's mode changed");
    let names: Vec<_> =
        fs::read_dir(&victim_dir).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, ["victim"], "victim dir's contents changed");
    assert_untouched(&victim_dir.join("victim"), m);
}

#[test]
fn remove_contents_removes_links_inside_without_following_them() {
    let t = setup();
    let m = mode(&t.victim);
    let outside = t.dir.path().join("outside");
    fs::create_dir(&outside).expect("outside");
    fs::write(outside.join("keep"), "x").expect("keep");
    symlink(&outside, t.s.data_dir.join("linked_dir")).expect("plant");
    symlink(&t.victim, t.s.data_dir.join("linked_file")).expect("plant");
    fs::create_dir(t.s.data_dir.join("sub")).expect("sub");
    symlink(&outside, t.s.data_dir.join("sub/deeper")).expect("plant");
    remove_contents(&t.s.data_dir, DATA_DIR_KEY).expect("remove");
    assert!(is_empty(&t.s.data_dir).expect("list"));
    assert!(outside.join("keep").exists(), "followed a link");
    assert_untouched(&t.victim, m);
}

#[test]
fn prepare_dirs_gives_away_what_it_creates_and_nothing_that_existed() {
    let t = setup();
    let parent = t.s.data_dir.parent().expect("parent").to_path_buf();
    let sockets = t.dir.path().join("run");
    fs::create_dir(&sockets).expect("socket dir");
    let mut s = t.s.clone();
    s.parameters.insert("unix_socket_directories".into(), sockets.display().to_string());
    prepare_dirs(&s, Some(PG)).expect("prepare");
    for existing in [&parent, &sockets] {
        assert_ne!(fs::metadata(existing).expect("dir").uid(), PG.uid, "{} given away", existing.display());
    }
    assert_real_file(&log_path(&s), PG.uid);
    assert_eq!(fs::metadata(&s.data_dir).expect("data").uid(), PG.uid, "the data directory is PostgreSQL's");

    // Missing, they are created for PostgreSQL.
    s.data_dir = t.dir.path().join("new/data");
    let created_sockets = t.dir.path().join("run2");
    s.parameters.insert("unix_socket_directories".into(), created_sockets.display().to_string());
    prepare_dirs(&s, Some(PG)).expect("prepare");
    for created in [&t.dir.path().join("new"), &s.data_dir, &created_sockets] {
        assert_eq!(fs::metadata(created).expect("dir").uid(), PG.uid, "{}", created.display());
    }
}

#[test]
fn a_restore_signals_recovery_or_keeps_what_the_restore_wrote() {
    let t = setup();
    let data = &t.s.data_dir;
    let (standby, recovery) = (data.join("standby.signal"), data.join("recovery.signal"));
    fs::write(&standby, "").expect("standby.signal");
    let settings = BTreeMap::from([("recovery_target_action".to_owned(), "promote".to_owned())]);
    write_config(&t.s, &Conf::Restore(Some(settings)), &Runtime::default(), None).expect("write");
    assert!(recovery.exists() && !standby.exists(), "recovery.signal only");

    fs::write(&standby, "").expect("standby.signal");
    write_config(&t.s, &Conf::Restore(None), &Runtime::default(), None).expect("write");
    assert!(recovery.exists() && standby.exists(), "kept as the restore left them");

    remove_recovery_signals(data).expect("remove");
    remove_recovery_signals(data).expect("absent is fine");
    assert!(!recovery.exists() && !standby.exists());
}
