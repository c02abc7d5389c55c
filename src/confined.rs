//! Files on the controller that come from people foobar does not fully trust (an app tree, a
//! playbook's templates, a secret's file, `host_vars/`): a path in, its bytes out, only when
//! it is a regular file of bounded size that is not a symbolic link (`O_NOFOLLOW`, and
//! `O_NONBLOCK` so a FIFO never hangs the run). And the one way foobar writes a tree under a
//! directory it was given (`render --out`): directories made one at a time and refused when
//! one is a link, every file created new (`O_CREAT | O_EXCL | O_NOFOLLOW`).
//!
//! The threat model is docs/design/trust-model.md.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{} is a symbolic link to {}", .path.display(), .target.display())]
    Link { path: PathBuf, target: PathBuf },
    #[error("{} is a {kind}, not a regular file", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is over the limit of {limit} bytes", .path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReadError {
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Link { path, .. }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::Io { path, .. } => path,
        }
    }
}

/// What a file type is called in an error.
pub fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// The link's target as the link says it (not resolved), for errors.
fn link_error(path: &Path) -> ReadError {
    ReadError::Link {
        path: path.to_path_buf(),
        target: std::fs::read_link(path).unwrap_or_else(|_| PathBuf::from("?")),
    }
}

/// The bytes of `path` and its metadata (of the opened file), if it is a regular file that is
/// not a link and holds at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<(Vec<u8>, std::fs::Metadata), ReadError> {
    read(path, limit, libc::O_NOFOLLOW)
}

/// [`read_regular`], a link followed to its target (a secret's file in a mounted volume is
/// often one), which must still be a regular file within `limit`.
pub fn read_regular_through_links(path: &Path, limit: u64) -> Result<String, ReadError> {
    let (bytes, _) = read(path, limit, 0)?;
    text(path, bytes)
}

fn read(path: &Path, limit: u64, nofollow: i32) -> Result<(Vec<u8>, std::fs::Metadata), ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                link_error(path)
            } else {
                io(e)
            }
        })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit,
        });
    }
    // The size said, checked again on what is read: a file may grow, `/proc` reports 0.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok((bytes, meta))
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    let (bytes, _) = read_regular(path, limit)?;
    text(path, bytes)
}

fn text(path: &Path, bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|_| ReadError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// Write `bytes` at `relative` under `root`, which must exist: each directory on the way is
/// made (`dir_mode`) or must already be a directory, never a link; the file is created new
/// (it must not exist, a link in its place included) with `mode` exactly (umask aside:
/// set on the open file). `relative` has only normal components. The full path out.
pub fn write_new(
    root: &Path,
    relative: &Path,
    bytes: &[u8],
    mode: u32,
    dir_mode: u32,
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let parts: Vec<_> = relative.components().collect();
    if parts.is_empty()
        || !parts
            .iter()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(bad(format!(
            "{} is not a path down from {}",
            relative.display(),
            root.display()
        )));
    }
    let mut dir = root.to_path_buf();
    for part in &parts[..parts.len() - 1] {
        dir.push(part);
        match std::fs::DirBuilder::new().mode(dir_mode).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let t = std::fs::symlink_metadata(&dir)?.file_type();
        if !t.is_dir() {
            return Err(bad(format!(
                "{} is a {}, not a directory: refusing to write through it",
                dir.display(),
                kind_of(&t)
            )));
        }
    }
    let dest = root.join(relative);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&dest)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                bad(format!(
                    "{} already exists (no render wrote it): refusing to replace it",
                    dest.display()
                ))
            } else {
                e
            }
        })?;
    file.write_all(bytes)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    Ok(dest)
}

/// The effective user id of this process.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_devices_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("id_ed25519");
        std::fs::write(&secret, "PRIVATE KEY").unwrap();
        let link = dir.path().join("k");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let err = read_regular(&link, 1 << 20).unwrap_err();
        assert!(
            matches!(&err, ReadError::Link { target, .. } if target == &secret),
            "{err}"
        );
        let err = read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::NotRegular {
                    kind: "character device",
                    ..
                }
            ),
            "{err}"
        );
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, 1 << 20).unwrap_err();
        assert!(
            matches!(err, ReadError::NotRegular { kind: "FIFO", .. }),
            "{err}"
        );
        std::fs::write(&secret, vec![b'x'; 100]).unwrap();
        let err = read_regular(&secret, 99).unwrap_err();
        assert!(
            matches!(err, ReadError::TooLarge { size: 100, .. }),
            "{err}"
        );
        assert_eq!(read_regular(&secret, 100).unwrap().0.len(), 100);
    }

    #[test]
    fn writes_never_go_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_new(root, Path::new("web-01/etc/a.conf"), b"a", 0o640, 0o755).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("web-01/etc/a.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        // A second write of the same file is refused: new files only.
        assert!(write_new(root, Path::new("web-01/etc/a.conf"), b"b", 0o644, 0o755).is_err());
        // A planted link, as a directory or as the file, is never written through.
        std::os::unix::fs::symlink(outside.path(), root.join("web-01/ssh")).unwrap();
        assert!(
            write_new(
                root,
                Path::new("web-01/ssh/authorized_keys"),
                b"k",
                0o644,
                0o755
            )
            .is_err()
        );
        std::os::unix::fs::symlink(outside.path().join("f"), root.join("web-01/f")).unwrap();
        assert!(write_new(root, Path::new("web-01/f"), b"k", 0o644, 0o755).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        for bad in ["/etc/x", "../x", "a/../../x", ""] {
            assert!(
                write_new(root, Path::new(bad), b"k", 0o644, 0o755).is_err(),
                "{bad}"
            );
        }
    }
}
