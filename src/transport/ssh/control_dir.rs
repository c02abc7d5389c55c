//! The private directory holding the control sockets: `/tmp/foobar-ssh-<uid>` (0700, owned
//! by us), or a fresh private one for this process when that one is not safe.
//!
//! In: nothing but the effective uid. Out: a [`ControlDir`], once per process.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The directory holding the control sockets.
#[derive(Debug)]
pub(super) struct ControlDir {
    pub(super) path: PathBuf,
    /// The well-known `/tmp/foobar-ssh-<uid>`, shared across runs; otherwise a private
    /// fallback for this process only (no persistence).
    pub(super) shared: bool,
}

pub(super) fn control_dir() -> io::Result<&'static ControlDir> {
    static DIR: OnceLock<ControlDir> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    let uid = current_uid()?;
    let shared = PathBuf::from(format!("/tmp/foobar-ssh-{uid}"));
    let dir = match ensure_private_dir(&shared, uid) {
        Ok(()) => ControlDir {
            path: shared,
            shared: true,
        },
        Err(_) => ControlDir {
            path: fresh_private_dir(uid)?,
            shared: false,
        },
    };
    // Another task may have won the race; theirs is as good (ours may be an unused empty
    // fallback directory).
    if let Err(unused) = DIR.set(dir)
        && !unused.shared
    {
        let _ = std::fs::remove_dir(&unused.path);
    }
    Ok(DIR.get().expect("set above"))
}

/// The effective uid: owner of `/proc/self` on Linux, else of a file we just created.
fn current_uid() -> io::Result<u32> {
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return Ok(meta.uid());
    }
    let probe =
        std::env::temp_dir().join(format!(".foobar-uid-{}-{}", std::process::id(), nanos()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let uid = file.metadata()?.uid();
    let _ = std::fs::remove_file(&probe);
    Ok(uid)
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Create `path` (mode 0700) or accept it if it already is a real directory owned by `uid`
/// with no group/other access.
fn ensure_private_dir(path: &Path, uid: u32) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // Never follow a symlink planted in /tmp.
    let meta = std::fs::symlink_metadata(path)?;
    match private_dir_problem(meta.is_dir(), meta.uid(), meta.permissions().mode(), uid) {
        None => Ok(()),
        Some(problem) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: {problem}", path.display()),
        )),
    }
}

/// Why a directory with these properties must not hold our control sockets, if it must not.
pub(crate) fn private_dir_problem(is_dir: bool, owner: u32, mode: u32, uid: u32) -> Option<String> {
    if !is_dir {
        Some("not a directory".to_string())
    } else if owner != uid {
        Some(format!("owned by uid {owner}, not {uid}"))
    } else if mode & 0o077 != 0 {
        Some(format!("mode {:o} gives access to others", mode & 0o7777))
    } else {
        None
    }
}

/// A new private directory for this process only: `/tmp/foobar-ssh-<uid>-<pid>-<n>`.
fn fresh_private_dir(uid: u32) -> io::Result<PathBuf> {
    let mut last = None;
    for attempt in 0..16u32 {
        let path = PathBuf::from(format!(
            "/tmp/foobar-ssh-{uid}-{}-{:x}",
            std::process::id(),
            (nanos() as u32) ^ attempt.rotate_left(16)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot create a private directory")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_rules() {
        assert_eq!(private_dir_problem(true, 1000, 0o40700, 1000), None);
        assert_eq!(private_dir_problem(true, 1000, 0o40500, 1000), None);
        assert!(private_dir_problem(false, 1000, 0o100600, 1000).is_some());
        assert!(private_dir_problem(true, 0, 0o40700, 1000).is_some());
        assert!(private_dir_problem(true, 1000, 0o40710, 1000).is_some());
        assert!(private_dir_problem(true, 1000, 0o40701, 1000).is_some());
        assert!(private_dir_problem(true, 1000, 0o41777, 1000).is_some());
    }

    #[test]
    fn ensure_private_dir_creates_accepts_and_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = current_uid().unwrap();
        let dir = tmp.path().join("ctl");
        ensure_private_dir(&dir, uid).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        ensure_private_dir(&dir, uid).unwrap(); // already there, fine

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(ensure_private_dir(&dir, uid).is_err());

        assert!(ensure_private_dir(&dir, uid.wrapping_add(1)).is_err());

        let target = tmp.path().join("target");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&target)
            .unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(ensure_private_dir(&link, uid).is_err());
    }

    #[test]
    fn control_dir_is_short_and_private() {
        let dir = control_dir().unwrap();
        let uid = current_uid().unwrap();
        let meta = std::fs::symlink_metadata(&dir.path).unwrap();
        assert_eq!(
            private_dir_problem(meta.is_dir(), meta.uid(), meta.mode(), uid),
            None
        );
        // `<dir>/.ssh-connectionXXXXXX/master` plus ssh's temporary `.XXXXXXXXXXXXXXXX`.
        let longest = dir.path.as_os_str().len() + "/.ssh-connectionXXXXXX/master".len() + 17;
        assert!(longest < 100, "{longest}");
    }
}
