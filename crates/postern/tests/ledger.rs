//! The access ledger (DESIGN invariant 10): hash-chained, so changing, removing or
//! re-hashing one stored entry makes `postern audit verify` fail and name the entry;
//! credential changes carry before/after values that are credential ids, never a
//! password or a hash.

use postern_core::store::ledger::entry_hash;
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_postern");

/// Runs a CLI command to completion; returns (exit code, stdout, stderr).
fn run(data: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("POSTERN_CONFIG")
        .env_remove("POSTERN_DATA")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn postern");
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().expect("wait for postern");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_ok(data: &Path, args: &[&str], stdin: &str) -> String {
    let (code, out, err) = run(data, args, stdin);
    assert_eq!(code, 0, "postern {args:?} failed:\n{out}\n{err}");
    out
}

/// `audit verify`: Ok(entries) or Err(the BROKEN line).
fn audit_verify(data: &Path) -> Result<u64, String> {
    let (code, out, err) = run(data, &["audit", "verify"], "");
    match code {
        0 => {
            let n = out
                .strip_prefix("ledger ok: ")
                .and_then(|r| r.lines().next())
                .and_then(|r| r.strip_suffix(" entries, chain intact"))
                .unwrap_or_else(|| panic!("unexpected audit verify output {out:?}"));
            Ok(n.parse().unwrap())
        }
        1 => {
            assert!(out.starts_with("ledger BROKEN at entry "), "{out:?} {err}");
            assert_eq!(out.lines().count(), 1, "one line naming the entry: {out:?}");
            Err(out.trim_end().to_string())
        }
        c => panic!("audit verify exited {c}: {out} {err}"),
    }
}

fn db(data: &Path) -> Connection {
    Connection::open(data.join("meta.sqlite")).expect("open meta.sqlite")
}

fn row(data: &Path, seq: i64) -> (String, String, String) {
    db(data)
        .query_row(
            "SELECT record, prev_hash, hash FROM ledger WHERE seq = ?1",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("ledger row")
}

fn set_record(data: &Path, seq: i64, record: &str, hash: Option<&str>) {
    let c = db(data);
    let n = match hash {
        None => c.execute(
            "UPDATE ledger SET record = ?1 WHERE seq = ?2",
            params![record, seq],
        ),
        Some(h) => c.execute(
            "UPDATE ledger SET record = ?1, hash = ?2 WHERE seq = ?3",
            params![record, h, seq],
        ),
    }
    .unwrap();
    assert_eq!(n, 1);
}

fn os_user() -> String {
    let uid = nix::unistd::Uid::current();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{uid}"))
}

/// The password credential id of an account as the ledger writes it (hex).
fn password_credential_id(data: &Path, local: &str) -> String {
    let id: i64 = db(data)
        .query_row(
            "SELECT c.id FROM credentials c JOIN principals p ON p.id = c.principal_id
             WHERE p.local_part = ?1 AND c.kind = 'password'",
            [local],
            |r| r.get(0),
        )
        .expect("one password credential");
    format!("{id:x}")
}

const ALICE_FIRST: &str = "Initial-Secret-1111";
const ALICE_SECOND: &str = "Changed-Secret-2222";

/// Seven administrative actions, one ledger entry each.
fn populate(data: &Path) -> (String, String) {
    run_ok(data, &["domain", "add", "example.com"], "");
    run_ok(
        data,
        &["account", "add", "alice@example.com"],
        &format!("{ALICE_FIRST}\n"),
    );
    let bob = run_ok(
        data,
        &["account", "add", "bob@example.com", "--generate"],
        "",
    );
    let bob_password = bob
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("generated password in {bob:?}"))
        .to_string();
    run_ok(
        data,
        &["alias", "add", "info@example.com", "alice@example.com"],
        "",
    );
    run_ok(
        data,
        &["account", "passwd", "alice@example.com"],
        &format!("{ALICE_SECOND}\n"),
    );
    let app = run_ok(
        data,
        &[
            "account",
            "app-password",
            "add",
            "alice@example.com",
            "--label",
            "phone",
            "--protocol",
            "imap",
        ],
        "",
    );
    let app_secret = app
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("app password secret in {app:?}"))
        .to_string();
    run_ok(data, &["account", "quota", "alice@example.com", "1G"], "");
    (bob_password, app_secret)
}

#[test]
fn tampering_with_one_entry_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    populate(&data);
    assert_eq!(audit_verify(&data), Ok(7));

    // Entry 5 is the password change of alice; entry 4 the alias.
    let k = 5i64;
    let (original, prev, hash) = row(&data, k);
    assert!(
        original.contains("\"action\":\"credential.password.set\""),
        "{original}"
    );

    // 1. Change the action.
    let altered = original.replace("\"credential.password.set\"", "\"account.quota.set\"");
    assert_ne!(altered, original);
    set_record(&data, k, &altered, None);
    assert_eq!(
        audit_verify(&data),
        Err("ledger BROKEN at entry 5: content does not match its hash (entry was altered)".into())
    );
    // `store verify` sees it too.
    let (code, out, _) = run(&data, &["store", "verify"], "");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("problem: ledger entry 5: content does not match its hash"),
        "{out}"
    );
    set_record(&data, k, &original, None);
    assert_eq!(audit_verify(&data), Ok(7));

    // 2. Change an after-value of another entry (the alias's target).
    let (alias_rec, _, _) = row(&data, 4);
    let altered = alias_rec.replace(
        "\"target\":\"alice@example.com\"}",
        "\"target\":\"mallory@evil.example\"}",
    );
    assert_ne!(altered, alias_rec, "{alias_rec}");
    set_record(&data, 4, &altered, None);
    assert_eq!(
        audit_verify(&data),
        Err("ledger BROKEN at entry 4: content does not match its hash (entry was altered)".into())
    );
    set_record(&data, 4, &alias_rec, None);
    assert_eq!(audit_verify(&data), Ok(7));

    // 3. Delete a row: the entry after the gap is named.
    db(&data)
        .execute("DELETE FROM ledger WHERE seq = ?1", [k])
        .unwrap();
    assert_eq!(
        audit_verify(&data),
        Err("ledger BROKEN at entry 6: sequence 6 where 5 was expected (an entry is missing or out of order)".into())
    );
    db(&data)
        .execute(
            "INSERT INTO ledger (seq, record, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)",
            params![k, original, prev, hash],
        )
        .unwrap();
    assert_eq!(audit_verify(&data), Ok(7));

    // 4. Alter the entry and forge its own hash: the next entry no longer links to it.
    let altered = original.replace("\"credential.password.set\"", "\"account.quota.set\"");
    let forged = entry_hash(k as u64, &prev, altered.as_bytes());
    assert_ne!(forged, hash);
    set_record(&data, k, &altered, Some(&forged));
    assert_eq!(
        audit_verify(&data),
        Err("ledger BROKEN at entry 6: prev_hash does not match the entry before".into())
    );
    set_record(&data, k, &original, Some(&hash));
    assert_eq!(audit_verify(&data), Ok(7));

    // 5. Swap two entries' contents (reordering).
    let (r6, _, _) = row(&data, 6);
    set_record(&data, 5, &r6, None);
    set_record(&data, 6, &original, None);
    assert_eq!(
        audit_verify(&data),
        Err("ledger BROKEN at entry 5: content does not match its hash (entry was altered)".into())
    );
    set_record(&data, 5, &original, None);
    set_record(&data, 6, &r6, None);
    assert_eq!(audit_verify(&data), Ok(7));
}

#[test]
fn credential_changes_are_recorded_without_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    run_ok(&data, &["domain", "add", "example.com"], "");
    run_ok(
        &data,
        &["account", "add", "alice@example.com"],
        &format!("{ALICE_FIRST}\n"),
    );
    let old_cred = password_credential_id(&data, "alice");
    let (bob_password, app_secret) = {
        let bob = run_ok(
            &data,
            &["account", "add", "bob@example.com", "--generate"],
            "",
        );
        let bob_password = bob
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .unwrap()
            .to_string();
        run_ok(
            &data,
            &["account", "passwd", "alice@example.com"],
            &format!("{ALICE_SECOND}\n"),
        );
        let app = run_ok(
            &data,
            &[
                "account",
                "app-password",
                "add",
                "alice@example.com",
                "--label",
                "phone",
                "--protocol",
                "imap",
            ],
            "",
        );
        (
            bob_password,
            app.lines()
                .find_map(|l| l.strip_prefix("secret: "))
                .unwrap()
                .to_string(),
        )
    };
    let new_cred = password_credential_id(&data, "alice");
    assert_ne!(old_cred, new_cred);

    let shown = run_ok(&data, &["audit", "show", "--json"], "");
    let entries: Vec<serde_json::Value> = shown
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["record"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "domain.create",
            "account.create",
            "account.create",
            "credential.password.set",
            "credential.app.create"
        ]
    );
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);

    let who = format!("cli:{}", os_user());
    for e in &entries {
        let r = &e["record"];
        assert_eq!(r["actor"]["account"], who.as_str(), "{e}");
        assert_eq!(r["actor"]["role"], "admin", "{e}");
        assert_eq!(r["session"]["protocol"], "cli", "{e}");
        assert_eq!(r["session"]["auth_method"], "local", "{e}");
        assert_eq!(r["result"], "ok", "{e}");
        assert!(r["time_ms"].as_i64().unwrap() > 1_700_000_000_000, "{e}");
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
    }
    let passwd = &entries[3]["record"];
    assert_eq!(passwd["target"], "alice@example.com");
    assert_eq!(
        passwd["before"],
        serde_json::json!({ "credential": old_cred })
    );
    assert_eq!(
        passwd["after"],
        serde_json::json!({ "credential": new_cred })
    );
    let alice_id: i64 = db(&data)
        .query_row(
            "SELECT id FROM principals WHERE local_part = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        passwd["objects"],
        serde_json::json!([format!("principal:{alice_id:x}")])
    );
    let create = &entries[1]["record"];
    assert_eq!(create["after"]["password_set"], true);
    assert_eq!(create["before"], serde_json::Value::Null);
    let app = &entries[4]["record"];
    assert_eq!(app["after"]["label"], "phone");
    assert_eq!(app["after"]["protocols"], serde_json::json!(["imap"]));

    // Reading the ledger is itself recorded, and the chain still holds.
    assert_eq!(audit_verify(&data), Ok(6));
    let (last, _, _) = row(&data, 6);
    assert!(last.contains("\"action\":\"audit.read\""), "{last}");

    // No secret, and no hash of one, anywhere in the ledger. The credentials table does
    // hold the hashes (so the needles below are the right shape).
    let hashes: Vec<String> = {
        let c = db(&data);
        let mut st = c
            .prepare("SELECT hash FROM credentials ORDER BY id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        hashes
            .iter()
            .filter(|h| h.starts_with("$argon2id$"))
            .count(),
        2,
        "{hashes:?}"
    );
    let app_digest = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(app_secret.as_bytes()))
    );
    assert!(hashes.contains(&app_digest), "{hashes:?}");
    let records: Vec<String> = {
        let c = db(&data);
        let mut st = c
            .prepare("SELECT record || prev_hash || hash FROM ledger ORDER BY seq")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(records.len(), 6);
    let mut needles = vec![
        ALICE_FIRST.to_string(),
        ALICE_SECOND.to_string(),
        bob_password,
        app_secret.clone(),
        "$argon2".to_string(),
        app_digest.clone(),
        hex::encode(Sha256::digest(app_secret.as_bytes())),
    ];
    needles.extend(hashes.iter().cloned());
    for rec in &records {
        for n in &needles {
            assert!(!rec.contains(n.as_str()), "ledger holds {n:?}: {rec}");
        }
    }
    assert!(!shown.contains("$argon2") && !shown.contains(&app_secret));
}
