//! Synced directories (`sync:` in a play): each source directory in, read once per run, out
//! its files as (relative path, content, digest, executable), sorted. Hidden files and
//! `__pycache__` are skipped; a file over `limits.max_file_size` or a name a host path cannot
//! carry faithfully (not UTF-8, control characters) is an error. So is a symbolic link (named
//! with its target: its body is never read nor synced as a link), a FIFO, socket or device,
//! and a file others may not read (synced files are 0644 on hosts: that would widen it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::RenderError;
use super::sha256_hex;
use crate::error::Location;
use crate::inventory::{HostName, Playbook};

/// A synced directory, read once: (relative path, content, digest, executable).
pub(super) type SyncTree = Vec<(String, Arc<[u8]>, String, bool)>;

/// Every synced directory of the playbook, read once, by source path.
pub(super) fn read_trees(playbook: &Playbook) -> Result<BTreeMap<PathBuf, SyncTree>, RenderError> {
    let mut sync_trees = BTreeMap::new();
    for play in &playbook.plays {
        for s in &play.sync {
            if !sync_trees.contains_key(&s.src) {
                let tree = read_tree(&s.src, playbook.limits.max_file_size, &s.location)?;
                sync_trees.insert(s.src.clone(), tree);
            }
        }
    }
    Ok(sync_trees)
}

fn read_tree(root: &Path, limit: u64, location: &Location) -> Result<SyncTree, RenderError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| RenderError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| RenderError::Read {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let name = entry.file_name();
            // A name a host path cannot carry faithfully is refused, never mangled.
            let Some(name) = name.to_str().filter(|n| !n.chars().any(char::is_control)) else {
                return Err(RenderError::Invalid {
                    location: Location::file_only(&path),
                    host: HostName::new("(all hosts)"),
                    message: format!(
                        "{} cannot be synced: its name is not UTF-8 or holds a control character",
                        path.display()
                    ),
                    hint: "rename the file (spaces and quotes are fine; newlines and invalid UTF-8 are not)".into(),
                });
            };
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            // The entry's own type: a link is never followed (its target may be a key in
            // ~/.ssh or /proc/self/environ), nor is anything but a file or a directory read.
            let file_type = entry.file_type().map_err(|source| RenderError::Read {
                path: path.clone(),
                source,
            })?;
            if file_type.is_dir() {
                stack.push(path);
                continue;
            }
            let (content, meta) = match crate::confined::read_regular(&path, limit) {
                Ok(read) => read,
                Err(e) => return Err(refused(e, location)),
            };
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            // On a host a synced file is 0644 (0755 if executable): a file its owner keeps
            // from others is not made world-readable without a word.
            if mode & 0o004 == 0 {
                return Err(RenderError::Invalid {
                    location: Location::file_only(&path),
                    host: HostName::new("(all hosts)"),
                    message: format!(
                        "{} is mode {mode:04o} (not readable by others), and a synced file is 0644 on the hosts (0755 if executable)",
                        path.display()
                    ),
                    hint: format!(
                        "if it may be world-readable on the hosts, `chmod o+r` it; if it is private, take it out of the tree and manage it under `files:` with its `mode:` (and `sensitive: true`); it is synced by {location}"
                    ),
                });
            }
            let content: Arc<[u8]> = content.into();
            let exec = mode & 0o111 != 0;
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let digest = sha256_hex(&content);
            out.push((rel, content, digest, exec));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A file of a synced tree that is not read: a link (named with its target), a FIFO, a
/// device, one over the size limit.
fn refused(e: crate::confined::ReadError, location: &Location) -> RenderError {
    use crate::confined::ReadError;
    let hint = match e {
        ReadError::TooLarge { path, size, limit } => {
            return RenderError::TooLarge {
                path: path.display().to_string(),
                size,
                limit,
                location: location.clone(),
            };
        }
        ReadError::Io { path, source } => return RenderError::Read { path, source },
        ReadError::Link { .. } => format!(
            "a synced tree holds files and directories only, and foobar never follows a link out of it: copy the file in, or remove the link (synced by {location})"
        ),
        ReadError::NotRegular { .. } => format!(
            "remove it from the tree; only files and directories are synced (by {location})"
        ),
    };
    RenderError::Invalid {
        location: Location::file_only(e.path()),
        host: HostName::new("(all hosts)"),
        message: format!("{e}: it cannot be synced"),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_names_that_cannot_be_carried_are_refused_with_their_path() {
        use std::os::unix::ffi::OsStrExt;
        for bad in [&b"new\nline"[..], b"not utf8 \xff"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("fine 'name' $(x)"), "ok").unwrap();
            let name = std::ffi::OsStr::from_bytes(bad);
            std::fs::write(dir.path().join(name), "x").unwrap();
            let err =
                read_tree(dir.path(), u64::MAX, &Location::file_only("site.yml")).unwrap_err();
            let RenderError::Invalid {
                location, message, ..
            } = &err
            else {
                panic!("{err}");
            };
            assert_eq!(location.file, dir.path().join(name));
            assert!(message.contains("cannot be synced"), "{message}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fine 'name' $(x)"), "ok").unwrap();
        let tree = read_tree(dir.path(), u64::MAX, &Location::file_only("site.yml")).unwrap();
        assert_eq!(tree[0].0, "fine 'name' $(x)");
    }
}
