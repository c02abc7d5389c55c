//! The project a run works in, and what its files may reach. A directory in (the working
//! directory, a playbook's), out the `foobar.toml` that applies to it and the project's root;
//! and [`confine`], which holds every path a playbook names (`templates_dir:`, `template:`,
//! `sync: src:`) inside that root after links are resolved.
//!
//! Discovery follows git's `safe.directory` lesson: it walks up from the start and stops at a
//! repository's root (a directory holding `.git`), at `$HOME`, and before crossing into
//! another filesystem; a `foobar.toml` not owned by the user (or root), or writable by group
//! or others, is ignored with a warning, since whoever can write it chooses the inventory and
//! playbook (and so the commands `plan` runs through an `ssh_config:`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "foobar.toml";

/// The `foobar.toml` for a run started in `start`, and a warning for each one passed over.
pub fn find_config(start: &Path) -> (Option<PathBuf>, Vec<String>) {
    let mut warnings = Vec::new();
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .and_then(|h| PathBuf::from(h).canonicalize().ok());
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    let device = std::fs::metadata(&start).map(|m| m.dev()).ok();
    let me = crate::confined::current_uid();
    for dir in start.ancestors() {
        let Ok(meta) = std::fs::metadata(dir) else {
            break;
        };
        if device.is_some_and(|d| d != meta.dev()) {
            break;
        }
        let candidate = dir.join(CONFIG_FILE);
        if let Ok(m) = std::fs::metadata(&candidate)
            && m.is_file()
        {
            let why = if m.uid() != me && m.uid() != 0 {
                Some(format!(
                    "it belongs to uid {}, not to you (uid {me})",
                    m.uid()
                ))
            } else if m.mode() & 0o022 != 0 {
                Some(format!(
                    "it is mode {:04o}: writable by {}",
                    m.mode() & 0o7777,
                    if m.mode() & 0o002 != 0 {
                        "anyone"
                    } else {
                        "its group"
                    }
                ))
            } else {
                None
            };
            match why {
                None => return (Some(candidate), warnings),
                Some(why) => warnings.push(format!(
                    "warning: ignoring {}: {why}, and whoever may write it chooses the inventory and playbook.\nhint: `chmod go-w` it (and `chown` it to yourself) if it is yours, or pass -i/-p",
                    candidate.display()
                )),
            }
        }
        if dir.join(".git").exists() || home.as_deref() == Some(dir) {
            break;
        }
    }
    (None, warnings)
}

/// The root of the project `playbook` belongs to: the directory of the `foobar.toml` found
/// from the playbook's directory, else the parent of the playbook's directory (the layout
/// `playbooks/`, `templates/`, `app/` side by side, which the default `templates_dir:
/// ../templates` assumes). Canonical.
pub fn root_for(playbook: &Path) -> PathBuf {
    let dir = playbook
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    match find_config(&dir).0 {
        Some(config) => config.parent().map(Path::to_path_buf).unwrap_or(dir),
        None => dir.parent().map(Path::to_path_buf).unwrap_or(dir),
    }
}

/// Why a path a playbook names may not be used. `Outside` holds the resolved path, empty
/// when it is the one written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    Missing,
    Outside(PathBuf),
    NotRegular(&'static str),
    NotADirectory(&'static str),
}

impl std::fmt::Display for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Confinement::Missing => write!(f, "does not exist"),
            Confinement::Outside(real) if real.as_os_str().is_empty() => {
                write!(f, "is outside the project")
            }
            Confinement::Outside(real) => {
                write!(f, "resolves to {}, outside the project", real.display())
            }
            Confinement::NotRegular(kind) => write!(f, "is a {kind}, not a regular file"),
            Confinement::NotADirectory(kind) => write!(f, "is a {kind}, not a directory"),
        }
    }
}

/// What is expected at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    File,
    Directory,
}

/// `path` with every link resolved, if that is inside `root` (canonical) and is what is
/// expected: a regular file (never a FIFO or a device) or a directory.
pub fn confine(root: &Path, path: &Path, expect: Expect) -> Result<PathBuf, Confinement> {
    let real = path.canonicalize().map_err(|_| Confinement::Missing)?;
    if !real.starts_with(root) {
        // Named when links or `..` made it another path than the one written.
        let shown = if real == path { PathBuf::new() } else { real };
        return Err(Confinement::Outside(shown));
    }
    let meta = std::fs::metadata(&real).map_err(|_| Confinement::Missing)?;
    let kind = crate::confined::kind_of(&meta.file_type());
    match expect {
        Expect::File if !meta.is_file() => Err(Confinement::NotRegular(kind)),
        Expect::Directory if !meta.is_dir() => Err(Confinement::NotADirectory(kind)),
        _ => Ok(real),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_after_links_are_resolved() {
        let project = tempfile::tempdir().unwrap();
        let root = project.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("templates")).unwrap();
        std::fs::write(root.join("templates/a.j2"), "a").unwrap();
        std::os::unix::fs::symlink("a.j2", root.join("templates/inside")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("templates/out")).unwrap();
        let t = root.join("templates");
        assert!(confine(&root, &t.join("a.j2"), Expect::File).is_ok());
        assert!(confine(&root, &t.join("inside"), Expect::File).is_ok());
        for bad in [
            "out",
            "../../../../etc/passwd",
            "/proc/self/environ",
            "/etc/passwd",
        ] {
            assert!(
                matches!(
                    confine(&root, &t.join(bad), Expect::File),
                    Err(Confinement::Outside(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            confine(&root, &t, Expect::File),
            Err(Confinement::NotRegular("directory"))
        );
        assert_eq!(
            confine(&root, &t.join("nope"), Expect::File),
            Err(Confinement::Missing)
        );
    }

    #[test]
    fn discovery_stops_at_a_repository_and_skips_writable_configs() {
        use std::os::unix::fs::PermissionsExt;
        let top = tempfile::tempdir().unwrap();
        let top = top.path().canonicalize().unwrap();
        let work = top.join("a/b");
        std::fs::create_dir_all(&work).unwrap();
        let planted = top.join(CONFIG_FILE);
        std::fs::write(&planted, "inventory = \"x.yml\"\n").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (found, warnings) = find_config(&work);
        assert_eq!(found, None);
        assert!(warnings[0].contains("writable by anyone"), "{warnings:?}");
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(find_config(&work).0.as_deref(), Some(planted.as_path()));
        // A repository between: its root is where the walk ends.
        std::fs::create_dir(top.join("a/.git")).unwrap();
        assert_eq!(find_config(&work), (None, vec![]));
        assert_eq!(root_for(&work.join("site.yml")), top.join("a"));
    }
}
