//! Least privilege (DESIGN.md §2 invariant 14): started as root only to bind ports below
//! 1024, the process hands its data directory to the service user and becomes that user
//! for good.
//!
//! Security: the chown runs as root over a tree that the service user has been able to
//! write to on earlier runs. A compromised service could have planted a symlink (to
//! `/etc/shadow`, say) or a hard link to a root-owned file, hoping the next start chowns
//! it. So the walk never follows a symlink below the given top paths (every open uses
//! `O_NOFOLLOW` relative to an already-open directory, so a rename race cannot redirect
//! it either), changes ownership through the descriptor it just opened and inspected,
//! and leaves hard-linked files alone.
//!
//! Call [`drop_privileges`] after binding and loading TLS material and before starting
//! the async runtime. glibc and musl apply set*id calls to every thread of the process,
//! but doing it while single-threaded leaves nothing to reason about.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::unistd::{self, Gid, Uid, User};
use tracing::{debug, info, warn};

use crate::NetError;

/// Deepest directory level the chown walk descends to. Our data directory is a few
/// levels deep (blobs fan out by two hash prefixes); a tree deeper than 32 is not ours,
/// and bounding the depth bounds the descriptors held open by the walk.
pub const MAX_CHOWN_DEPTH: usize = 32;

/// The user to fall back to when the configured one does not exist.
pub const FALLBACK_USER: &str = "nobody";

/// What [`drop_privileges`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropOutcome {
    /// The effective uid was not 0; nothing was changed.
    NotRoot,
    /// The process now runs as this user and cannot get root back.
    Dropped {
        /// The user actually used (the configured one, or [`FALLBACK_USER`]).
        user: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid, now the only group.
        gid: u32,
    },
}

/// If the effective uid is 0: resolves `user` (if it does not exist, falls back to
/// [`FALLBACK_USER`] with a warning), chowns each path in `chown` recursively to that
/// user and its primary group (see the module docs for what is skipped), calls
/// `setgroups([gid])`, `setgid`, `setuid`, then verifies that `setuid(0)` fails.
/// Otherwise returns [`DropOutcome::NotRoot`] and changes nothing.
///
/// Top-level paths in `chown` are followed if they are symlinks (they come from the
/// administrator's configuration); nothing below them is.
pub fn drop_privileges(user: &str, chown: &[&Path]) -> Result<DropOutcome, NetError> {
    if !unistd::geteuid().is_root() {
        return Ok(DropOutcome::NotRoot);
    }
    let target = resolve(user)?;
    let (uid, gid) = (target.uid, target.gid);
    if uid.is_root() || gid.as_raw() == 0 {
        return Err(NetError::TargetIsPrivileged {
            user: target.name,
            uid: uid.as_raw(),
            gid: gid.as_raw(),
        });
    }
    for path in chown {
        chown_tree(path, uid, gid)?;
    }
    // Supplementary groups first: they are root's (e.g. gid 0) and only root may
    // change them. Then the gid, while we still may. The uid last.
    unistd::setgroups(&[gid]).map_err(|source| NetError::SetIds {
        step: "setgroups",
        source,
    })?;
    unistd::setgid(gid).map_err(|source| NetError::SetIds {
        step: "setgid",
        source,
    })?;
    // As root, setuid sets the real, effective and saved uid alike, so no saved 0
    // remains to switch back to.
    unistd::setuid(uid).map_err(|source| NetError::SetIds {
        step: "setuid",
        source,
    })?;
    verify_dropped(uid, gid)?;
    info!(user = %target.name, uid = uid.as_raw(), gid = gid.as_raw(), "dropped root privileges");
    Ok(DropOutcome::Dropped {
        user: target.name,
        uid: uid.as_raw(),
        gid: gid.as_raw(),
    })
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (every connection costs a
/// descriptor; see [`crate::Limits::max_connections`]) and returns the new soft limit.
pub fn raise_nofile_limit() -> Result<u64, NetError> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(NetError::Rlimit)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(NetError::Rlimit)?;
    }
    Ok(hard.max(soft))
}

fn resolve(user: &str) -> Result<User, NetError> {
    let lookup = |name: &str| {
        User::from_name(name).map_err(|source| NetError::UserLookup {
            user: name.to_owned(),
            source,
        })
    };
    if let Some(found) = lookup(user)? {
        return Ok(found);
    }
    warn!(
        user,
        fallback = FALLBACK_USER,
        "service user does not exist; falling back"
    );
    lookup(FALLBACK_USER)?.ok_or_else(|| NetError::NoSuchUser {
        user: user.to_owned(),
    })
}

fn verify_dropped(uid: Uid, gid: Gid) -> Result<(), NetError> {
    let fail = |what: String| Err(NetError::PrivilegesRegainable(what));
    if unistd::setuid(Uid::from_raw(0)).is_ok() {
        return fail("setuid(0) succeeded".to_owned());
    }
    if unistd::setgid(Gid::from_raw(0)).is_ok() {
        return fail("setgid(0) succeeded".to_owned());
    }
    match unistd::getresuid() {
        Ok(ids) if ids.real == uid && ids.effective == uid && ids.saved == uid => {}
        Ok(ids) => {
            return fail(format!(
                "uids are {}/{}/{}, expected {uid}",
                ids.real, ids.effective, ids.saved
            ));
        }
        Err(e) => return fail(format!("getresuid: {e}")),
    }
    match unistd::getresgid() {
        Ok(ids) if ids.real == gid && ids.effective == gid && ids.saved == gid => {}
        Ok(ids) => {
            return fail(format!(
                "gids are {}/{}/{}, expected {gid}",
                ids.real, ids.effective, ids.saved
            ));
        }
        Err(e) => return fail(format!("getresgid: {e}")),
    }
    match unistd::getgroups() {
        Ok(groups) if groups.iter().all(|g| *g == gid) => Ok(()),
        Ok(groups) => fail(format!("supplementary groups still {groups:?}")),
        Err(e) => fail(format!("getgroups: {e}")),
    }
}

/// A descriptor from `openat` that is closed however we leave the scope.
struct Fd(RawFd);

impl Fd {
    /// Hands the descriptor to a new owner (which must close it).
    fn release(self) -> RawFd {
        let fd = self.0;
        std::mem::forget(self);
        fd
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = unistd::close(self.0);
    }
}

fn chown_tree(top: &Path, uid: Uid, gid: Gid) -> Result<(), NetError> {
    let err = |source| NetError::Chown {
        path: top.to_path_buf(),
        source,
    };
    // O_NONBLOCK: a FIFO at the top must not hang startup. The top path itself is
    // followed: it is configuration, not content.
    let fd = Fd(fcntl::open(
        top,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(err)?);
    let st = stat::fstat(fd.0).map_err(err)?;
    match file_type(&st) {
        SFlag::S_IFDIR => {
            chown_fd(fd.0, &st, uid, gid).map_err(err)?;
            let dir = Dir::from_fd(fd.release()).map_err(err)?;
            walk(dir, top, 1, uid, gid)
        }
        SFlag::S_IFREG if st.st_nlink > 1 => {
            warn!(path = %top.display(), "hard-linked file not chowned");
            Ok(())
        }
        SFlag::S_IFREG => chown_fd(fd.0, &st, uid, gid).map_err(err),
        _ => {
            debug!(path = %top.display(), "special file not chowned");
            Ok(())
        }
    }
}

fn walk(mut dir: Dir, path: &Path, depth: usize, uid: Uid, gid: Gid) -> Result<(), NetError> {
    if depth > MAX_CHOWN_DEPTH {
        return Err(NetError::ChownTooDeep {
            path: path.to_path_buf(),
            max: MAX_CHOWN_DEPTH,
        });
    }
    let dirfd = dir.as_raw_fd();
    // Names first, then work: the directory stream is not touched while entries change
    // owner (and Dir::iter borrows the Dir mutably).
    let mut names: Vec<CString> = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(|source| NetError::Chown {
            path: path.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    for name in names {
        let child = path.join(OsStr::from_bytes(name.to_bytes()));
        let err = |source| NetError::Chown {
            path: child.clone(),
            source,
        };
        // Cheap look first, so that the common case (already ours) costs no open.
        let seen = match stat::fstatat(Some(dirfd), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue, // removed meanwhile
            Err(e) => return Err(err(e)),
        };
        let kind = file_type(&seen);
        if kind == SFlag::S_IFLNK {
            debug!(path = %child.display(), "symlink not followed");
            continue;
        }
        if kind == SFlag::S_IFREG && owned_by(&seen, uid, gid) {
            continue;
        }
        if kind != SFlag::S_IFREG && kind != SFlag::S_IFDIR {
            debug!(path = %child.display(), "special file not chowned");
            continue;
        }
        // What we act on is what this open returns: O_NOFOLLOW refuses a symlink
        // swapped in since the fstatat, and the checks below are on the descriptor.
        let fd = match fcntl::openat(
            Some(dirfd),
            name.as_c_str(),
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => Fd(fd),
            Err(Errno::ENOENT) => continue,
            Err(Errno::ELOOP) => {
                warn!(path = %child.display(), "entry became a symlink during chown; skipped");
                continue;
            }
            Err(e) => return Err(err(e)),
        };
        let st = stat::fstat(fd.0).map_err(err)?;
        match file_type(&st) {
            SFlag::S_IFDIR => {
                chown_fd(fd.0, &st, uid, gid).map_err(err)?;
                let sub = Dir::from_fd(fd.release()).map_err(err)?;
                walk(sub, &child, depth + 1, uid, gid)?;
            }
            SFlag::S_IFREG if st.st_nlink > 1 => {
                // Changing it would change every other name of the same inode, which
                // may be outside our tree.
                warn!(path = %child.display(), links = st.st_nlink, "hard-linked file not chowned");
            }
            SFlag::S_IFREG => chown_fd(fd.0, &st, uid, gid).map_err(err)?,
            _ => debug!(path = %child.display(), "special file not chowned"),
        }
    }
    Ok(())
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn owned_by(st: &FileStat, uid: Uid, gid: Gid) -> bool {
    st.st_uid == uid.as_raw() && st.st_gid == gid.as_raw()
}

fn chown_fd(fd: RawFd, st: &FileStat, uid: Uid, gid: Gid) -> nix::Result<()> {
    if owned_by(st, uid, gid) {
        return Ok(());
    }
    unistd::fchown(fd, Some(uid), Some(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_root_changes_nothing() {
        if unistd::geteuid().is_root() {
            // Covered by tests/privilege.rs in a child process.
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            drop_privileges("nobody", &[dir.path()]).unwrap(),
            DropOutcome::NotRoot
        );
    }

    #[test]
    fn raise_nofile_is_idempotent() {
        let first = raise_nofile_limit().unwrap();
        assert_eq!(raise_nofile_limit().unwrap(), first);
    }
}
