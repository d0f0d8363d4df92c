//! Who an address is: `Core::resolve` for accounts, aliases (local and external),
//! plus addressing, catch-alls, groups (nested, and looping) and addresses that are not
//! ours.

use postern_core::address::parse_address;
use postern_core::directory::Resolution;
use postern_core::store::sqlite::{SqliteOptions, SqliteStore};
use postern_core::store::{FsBlobStore, PrincipalKind};
use postern_core::{AdminSession, Argon2Settings, Core, CoreSettings};
use std::collections::HashMap;
use std::sync::Arc;

/// Domain names by id, for printing principals (ids are random, so one map serves
/// every test of this file).
static DOMAINS: std::sync::LazyLock<
    std::sync::Mutex<HashMap<postern_core::store::DomainId, String>>,
> = std::sync::LazyLock::new(Default::default);

struct Env {
    core: Core,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&dir.path().join("meta.sqlite"), SqliteOptions::default()).unwrap();
    let blobs = FsBlobStore::open(&dir.path().join("blobs")).unwrap();
    let settings = CoreSettings {
        argon2: Argon2Settings {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let core = Core::new(Arc::new(store), Arc::new(blobs), settings).unwrap();
    core.set_admin_token("test-admin-token-0123456789");
    let session = postern_core::store::SessionInfo {
        protocol: "cli".into(),
        ..Default::default()
    };
    let admin: AdminSession = core
        .admin_session("test-admin-token-0123456789", "cli:test", session)
        .unwrap();
    for d in ["example.com", "catch.example"] {
        let domain = core.domain_add(&admin, d).await.unwrap();
        DOMAINS.lock().unwrap().insert(domain.id, domain.name);
    }
    for (a, kind) in [
        ("alice@example.com", PrincipalKind::Individual),
        ("bob@example.com", PrincipalKind::Individual),
        ("carol@example.com", PrincipalKind::Individual),
        ("a+b@example.com", PrincipalKind::Individual),
        ("shared@example.com", PrincipalKind::Shared),
        ("team@example.com", PrincipalKind::Group),
        ("staff@example.com", PrincipalKind::Group),
        ("erin@catch.example", PrincipalKind::Individual),
    ] {
        core.account_add(&admin, a, kind, None, None, None)
            .await
            .unwrap();
    }
    for (alias, target) in [
        ("info@example.com", "alice@example.com"),
        ("chain@example.com", "info@example.com"),
        ("fwd@example.com", "someone@external.example"),
        ("both@example.com", "alice@example.com"),
        ("both@example.com", "partner@external.example"),
        ("sales@example.com", "team@example.com"),
        ("*@catch.example", "bob@example.com"),
        ("sales@catch.example", "carol@example.com"),
    ] {
        core.alias_add(&admin, alias, target).await.unwrap();
    }
    // team = alice, bob, alice again through an alias, an external partner, an unknown
    // address of ours, and staff; staff = carol and team (a loop).
    for (group, member) in [
        ("team@example.com", "alice@example.com"),
        ("team@example.com", "bob@example.com"),
        ("team@example.com", "info@example.com"),
        ("team@example.com", "partner@external.example"),
        ("team@example.com", "ghost@example.com"),
        ("team@example.com", "staff@example.com"),
        ("staff@example.com", "carol@example.com"),
        ("staff@example.com", "team@example.com"),
    ] {
        core.group_member_add(&admin, group, member).await.unwrap();
    }
    Env { core, _dir: dir }
}

/// A resolution in comparable form: `Ok((local principals as addresses, in the order
/// given, and external addresses))`, or `Err("unknown" | "not ours")`.
async fn resolve(core: &Core, address: &str) -> Result<(Vec<String>, Vec<String>), &'static str> {
    let a = parse_address(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    let domains = DOMAINS.lock().unwrap().clone();
    match core.resolve(&a).await.unwrap() {
        Resolution::NotOurs => Err("not ours"),
        Resolution::Unknown => Err("unknown"),
        Resolution::Deliver {
            local, external, ..
        } => Ok((
            local
                .iter()
                .map(|p| format!("{}@{}", p.local_part, domains[&p.domain]))
                .collect(),
            external,
        )),
    }
}

fn to(local: &[&str], external: &[&str]) -> Result<(Vec<String>, Vec<String>), &'static str> {
    Ok((
        local.iter().map(|s| s.to_string()).collect(),
        external.iter().map(|s| s.to_string()).collect(),
    ))
}

/// Local recipients sorted (group order is the store's), for set comparisons.
fn sorted(
    r: Result<(Vec<String>, Vec<String>), &'static str>,
) -> Result<(Vec<String>, Vec<String>), &'static str> {
    r.map(|(mut l, e)| {
        l.sort();
        (l, e)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_aliases() {
    let env = env().await;
    let c = &env.core;
    assert_eq!(
        resolve(c, "alice@example.com").await,
        to(&["alice@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "shared@example.com").await,
        to(&["shared@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "erin@catch.example").await,
        to(&["erin@catch.example"], &[])
    );
    // Alias → account, alias → alias → account.
    assert_eq!(
        resolve(c, "info@example.com").await,
        to(&["alice@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "chain@example.com").await,
        to(&["alice@example.com"], &[])
    );
    // Alias → external address.
    assert_eq!(
        resolve(c, "fwd@example.com").await,
        to(&[], &["someone@external.example"])
    );
    // One alias, two targets.
    assert_eq!(
        resolve(c, "both@example.com").await,
        to(&["alice@example.com"], &["partner@external.example"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_addressing() {
    let env = env().await;
    let c = &env.core;
    assert_eq!(
        resolve(c, "alice+tag@example.com").await,
        to(&["alice@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "alice+a+b@example.com").await,
        to(&["alice@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "info+news@example.com").await,
        to(&["alice@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "fwd+x@example.com").await,
        to(&[], &["someone@external.example"])
    );
    // An account whose name holds the separator is matched whole first.
    assert_eq!(
        resolve(c, "a+b@example.com").await,
        to(&["a+b@example.com"], &[])
    );
    // …and no `a` exists for the tag to be split off.
    assert_eq!(resolve(c, "a+c@example.com").await, Err("unknown"));
    assert_eq!(resolve(c, "nobody+tag@example.com").await, Err("unknown"));
    // A leading separator is not plus addressing.
    assert_eq!(resolve(c, "+alice@example.com").await, Err("unknown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_all_only_when_nothing_else_matches() {
    let env = env().await;
    let c = &env.core;
    assert_eq!(
        resolve(c, "erin@catch.example").await,
        to(&["erin@catch.example"], &[])
    );
    assert_eq!(
        resolve(c, "erin+tag@catch.example").await,
        to(&["erin@catch.example"], &[])
    );
    assert_eq!(
        resolve(c, "sales@catch.example").await,
        to(&["carol@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "sales+q4@catch.example").await,
        to(&["carol@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "random@catch.example").await,
        to(&["bob@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "Random+X@Catch.Example").await,
        to(&["bob@example.com"], &[])
    );
    // The other domain has no catch-all.
    assert_eq!(resolve(c, "random@example.com").await, Err("unknown"));
    assert_eq!(resolve(c, "ghost@example.com").await, Err("unknown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_nest_and_loops_end() {
    let env = env().await;
    let c = &env.core;
    let everyone = to(
        &["alice@example.com", "bob@example.com", "carol@example.com"],
        &["partner@external.example"],
    );
    // team → alice, bob, info (→ alice: once), partner, ghost (nobody: nothing),
    // staff → carol, team (already expanded: the loop ends).
    let team = resolve(c, "team@example.com").await;
    assert_eq!(sorted(team.clone()), everyone);
    assert_eq!(team.as_ref().unwrap().0.len(), 3, "no duplicates: {team:?}");
    assert_eq!(sorted(resolve(c, "staff@example.com").await), everyone);
    // Alias → group, plus addressing on a group, any case.
    assert_eq!(sorted(resolve(c, "sales@example.com").await), everyone);
    assert_eq!(sorted(resolve(c, "team+all@example.com").await), everyone);
    assert_eq!(sorted(resolve(c, "TEAM@Example.COM").await), everyone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_not_ours_and_case() {
    let env = env().await;
    let c = &env.core;
    assert_eq!(resolve(c, "nobody@example.com").await, Err("unknown"));
    assert_eq!(resolve(c, "x@other.example").await, Err("not ours"));
    assert_eq!(resolve(c, "alice@other.example").await, Err("not ours"));
    // A subdomain of ours is another domain.
    assert_eq!(resolve(c, "alice@mail.example.com").await, Err("not ours"));
    assert_eq!(
        resolve(c, "ALICE@EXAMPLE.COM").await,
        to(&["alice@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "Info@Example.Com").await,
        to(&["alice@example.com"], &[])
    );
    assert_eq!(
        resolve(c, "Alice@Example.COM.").await,
        to(&["alice@example.com"], &[])
    );
}
