//! `postern config check FILE` and `postern config defaults`: a bad file exits 2 with
//! `FILE:LINE:COLUMN: key `dotted.key`: message`; a good one exits 0.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// `postern ARGS…`: (exit code, stdout, stderr).
fn postern_run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = postern();
    cmd.args(args);
    let out = run(cmd, b"");
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn check(file: &Path) -> (Option<i32>, String, String) {
    postern_run(&["config", "check", file.to_str().unwrap()])
}

/// Checks `content` and expects exit 2, nothing on stdout, and one line on stderr that
/// starts with `FILE:` + `position` and continues with `rest`.
fn assert_refused(content: &str, position: &str, rest: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "postern.toml", content);
    let (code, stdout, stderr) = check(&file);
    assert_eq!(code, Some(2), "{content}\nstderr: {stderr}");
    assert_eq!(stdout, "");
    let prefix = format!("{}:{position}", file.display());
    assert!(
        stderr.starts_with(&prefix),
        "expected {prefix:?}, got {stderr:?}"
    );
    assert!(
        stderr[prefix.len()..].starts_with(rest),
        "expected {rest:?} after {prefix:?}, got {stderr:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
}

#[test]
fn unknown_key_is_named_with_its_line() {
    assert_refused(
        "hostname = \"mail.example.com\"\n\n[limits]\nmax_connections = 100\nbogus = 1\n",
        "5:1: ",
        "key `limits.bogus`: unknown field `bogus`, expected one of `max_connections`, ",
    );
    assert_refused(
        "[server]\nrun_as = \"postern\"\n\n[sever]\n",
        "4:2: ",
        "key `sever`: unknown field `sever`",
    );
    assert_refused(
        "limits.bogus = 1\n",
        "1:8: ",
        "key `limits.bogus`: unknown field `bogus`",
    );
}

#[test]
fn wrong_type_is_named_with_its_line() {
    assert_refused(
        "[limits]\nmax_connections = \"many\"\n",
        "2:19: ",
        "key `limits.max_connections`: invalid type: string \"many\", expected usize",
    );
    assert_refused(
        "[listen]\nsmtp = \"127.0.0.1:25\"\n",
        "2:8: ",
        "key `listen.smtp`: invalid type: string \"127.0.0.1:25\", expected a sequence",
    );
    assert_refused(
        "# comment\n[server]\nshutdown_grace_secs = -1\n",
        "3:23: ",
        "key `server.shutdown_grace_secs`: invalid value: integer `-1`, expected u64",
    );
}

#[test]
fn host_names_are_not_listener_addresses() {
    assert_refused(
        "# listeners\n[listen]\nsmtp = [\"localhost:25\"]\n",
        "3:9: ",
        "key `listen.smtp[0]`: `localhost:25` is not an address and port: expected \"ip:port\" \
         such as \"0.0.0.0:25\" or \"[::]:25\" (host names are not resolved)",
    );
    assert_refused(
        "[listen]\nimap = [\"127.0.0.1:143\", \"mail.example.com:143\"]\n",
        "2:26: ",
        "key `listen.imap[1]`: `mail.example.com:143` is not an address and port",
    );
}

#[test]
fn checks_beyond_types_name_the_key_and_line() {
    assert_refused(
        "[listen]\nadmin = [\"0.0.0.0:8008\"]\n",
        "2:10: ",
        "key `listen.admin[0]`: the admin API may listen on loopback only",
    );
    assert_refused(
        "[listen]\nsmtp = [\"127.0.0.1:2525\"]\nimap = [\"127.0.0.1:2525\"]\n",
        "3:9: ",
        "key `listen.imap[0]`: `127.0.0.1:2525` is used by both `listen.smtp[0]` and `listen.imap[0]`",
    );
    assert_refused(
        "hostname = \"mail example\"\n",
        "1:1: ",
        "key `hostname`: `mail example` is not a domain name",
    );
}

#[test]
fn syntax_error_has_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (content, line) in [
        ("hostname = \"a.example\"\n\n[limits\n", 3),
        ("[limits]\nmax_connections = 1\nmax_connections = 2\n", 3),
        ("data_dir = \"unterminated\n", 1),
    ] {
        let file = write(dir.path(), "bad.toml", content);
        let (code, stdout, stderr) = check(&file);
        assert_eq!(code, Some(2), "{content:?}: {stderr}");
        assert_eq!(stdout, "");
        let prefix = format!("{}:{line}:", file.display());
        assert!(
            stderr.starts_with(&prefix),
            "{content:?}: expected {prefix:?}, got {stderr:?}"
        );
        assert!(
            !stderr.contains(": key `"),
            "a syntax error names no key: {stderr}"
        );
    }
}

#[test]
fn good_files_pass() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.toml", "");
    assert_eq!(
        check(&empty),
        (
            Some(0),
            format!("{}: ok (8 listeners)\n", empty.display()),
            String::new()
        )
    );
    let some = write(
        dir.path(),
        "some.toml",
        "hostname = \"mail.example.com\"\n[listen]\nsmtp = []\nimap = [\"127.0.0.1:1143\", \"[::1]:1143\"]\n\
         [limits]\nconnections_per_ip = 2\n",
    );
    assert_eq!(
        check(&some),
        (
            Some(0),
            format!("{}: ok (8 listeners)\n", some.display()),
            String::new()
        )
    );
    let test = write(
        dir.path(),
        "test.toml",
        &test_config(&dir.path().join("data"), ""),
    );
    assert_eq!(check(&test).0, Some(0));
    let missing = dir.path().join("missing.toml");
    let (code, stdout, stderr) = check(&missing);
    assert_eq!((code, stdout.as_str()), (Some(2), ""));
    assert!(
        stderr.starts_with(&format!("{}: cannot read the file: ", missing.display())),
        "{stderr}"
    );
}

#[test]
fn defaults_are_the_example_file_and_a_valid_config() {
    let (code, stdout, stderr) = postern_run(&["config", "defaults"]);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../postern.example.toml"
    ))
    .unwrap();
    assert_eq!(stdout.trim_end(), example.trim_end());
    let table: toml::Table = toml::from_str(&stdout).expect("defaults parse as TOML");
    assert!(table.contains_key("listen") && table.contains_key("limits"));
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "defaults.toml", &stdout);
    assert_eq!(
        check(&file),
        (
            Some(0),
            format!("{}: ok (8 listeners)\n", file.display()),
            String::new()
        )
    );
}

/// Every command loads the configuration the same way, and refuses a bad one before
/// doing anything.
#[test]
fn a_bad_config_stops_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write(
        dir.path(),
        "bad.toml",
        &format!("data_dir = \"{}\"\n[limits]\nbogus = 1\n", data.display()),
    );
    let f = file.to_str().unwrap();
    for args in [
        &["serve"][..],
        &["domain", "list"],
        &["account", "list"],
        &["audit", "verify"],
    ] {
        let mut all = vec!["--config", f];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = postern_run(&all);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stdout, "");
        assert!(
            stderr.starts_with(&format!("{f}:3:1: key `limits.bogus`: ")),
            "{args:?}: {stderr}"
        );
    }
    assert!(!data.exists(), "nothing was created");
}
