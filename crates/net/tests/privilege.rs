//! Privilege drop. Never drops privileges in the test process itself: when the tests
//! run as root, the drop happens in a child process (this same test binary, re-run with
//! `CHILD_ENV` set to select `child_drops_privileges`).

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use nix::unistd::{self, Uid};
use postern_net::privilege::{DropOutcome, drop_privileges};

const CHILD_ENV: &str = "POSTERN_NET_PRIVILEGE_CHILD";
const CHILD_OK: &str = "PRIVILEGE-CHILD-OK";

#[test]
fn drop_privileges_as_whoever_runs_the_tests() {
    if !unistd::geteuid().is_root() {
        let dir = tempfile::tempdir().unwrap();
        let before = std::fs::metadata(dir.path()).unwrap().uid();
        assert_eq!(
            drop_privileges("nobody", &[dir.path()]).unwrap(),
            DropOutcome::NotRoot
        );
        assert_eq!(std::fs::metadata(dir.path()).unwrap().uid(), before);
        assert_eq!(unistd::geteuid(), unistd::getuid());
        return;
    }
    for user in ["nobody", "postern-test-no-such-user"] {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_drops_privileges",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, user)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains(CHILD_OK),
            "child for {user} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    // The parent kept its root.
    assert!(unistd::geteuid().is_root());
}

/// Only does something in the child process started above.
#[test]
fn child_drops_privileges() {
    let Ok(user) = std::env::var(CHILD_ENV) else {
        return;
    };
    assert!(unistd::geteuid().is_root(), "child must start as root");

    // A root-owned file outside the tree, reachable through a symlink and a hard link
    // planted inside it: neither may be chowned.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"root only").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    let data = tempfile::tempdir().unwrap();
    let nested = data.path().join("blobs").join("ab");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join("blob"), b"mail").unwrap();
    std::fs::write(data.path().join("db"), b"sqlite").unwrap();
    symlink(&secret, data.path().join("link-to-secret")).unwrap();
    symlink(outside.path(), data.path().join("link-to-dir")).unwrap();
    std::fs::hard_link(&secret, data.path().join("hardlink-to-secret")).unwrap();

    let outcome = drop_privileges(&user, &[data.path()]).unwrap();
    let DropOutcome::Dropped {
        user: used,
        uid,
        gid,
    } = outcome
    else {
        panic!("expected a drop, got {outcome:?}");
    };
    // An unknown user falls back to nobody.
    assert_eq!(used, "nobody");
    assert_ne!(uid, 0);
    assert_ne!(gid, 0);

    assert_eq!(unistd::getuid().as_raw(), uid);
    assert_eq!(unistd::geteuid().as_raw(), uid);
    assert_eq!(unistd::getegid().as_raw(), gid);
    assert!(
        unistd::setuid(Uid::from_raw(0)).is_err(),
        "root is gone for good"
    );
    assert!(unistd::seteuid(Uid::from_raw(0)).is_err());

    let owner = |p: &Path| {
        let meta = std::fs::symlink_metadata(p).unwrap();
        (meta.uid(), meta.gid())
    };
    for ours in [
        data.path().to_path_buf(),
        data.path().join("blobs"),
        nested.clone(),
        nested.join("blob"),
        data.path().join("db"),
    ] {
        assert_eq!(owner(&ours), (uid, gid), "{}", ours.display());
    }
    assert_eq!(owner(&secret).0, 0, "hard link target untouched");
    assert_eq!(owner(outside.path()).0, 0, "symlinked directory untouched");
    assert_eq!(
        owner(&data.path().join("link-to-secret")).0,
        0,
        "symlink itself untouched"
    );

    // The dropped process can still use its data directory.
    std::fs::write(nested.join("new"), b"written after drop").unwrap();
    assert!(
        std::fs::read(&secret).is_err(),
        "cannot read root's file any more"
    );

    println!("{CHILD_OK}");
}
