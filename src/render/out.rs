//! `render --out DIR`: a host and one of its rendered paths in, the file's place under
//! `DIR/host` out (relative to `DIR`), or an [`OutPathError`] for a host name or a path that
//! could leave `DIR`; and [`write`], the one function that writes under `DIR` (through
//! [`crate::confined::write_new`]: new files, never through a link).

use std::path::{Path, PathBuf};

use crate::inventory::HostName;

/// Why `render --out` will not write a rendered path.
#[derive(Debug, thiserror::Error)]
pub enum OutPathError {
    #[error("{path} on {host} {why}: refusing to write it under {out}")]
    Invalid {
        path: String,
        host: HostName,
        why: crate::inventory::rules::RuleViolation,
        out: String,
    },
    #[error("host name `{}` is not one directory name: refusing to write under {out}", .host.as_str().escape_debug())]
    HostName { host: HostName, out: String },
    #[error("{path} on {host} leaves {host_dir}")]
    Escapes {
        path: String,
        host: HostName,
        host_dir: String,
    },
}

/// Where `render --out DIR` writes `path` of `host`: always inside `DIR/host`, returned
/// relative to `DIR`. A path that is not absolute and normalized (`/../../tmp/x`) is refused,
/// never followed out of DIR; so is a host name that is not one plain directory name
/// (`/root`, `..`, empty; the inventory refuses those already).
pub fn out_path(out: &Path, host: &HostName, path: &str) -> Result<PathBuf, OutPathError> {
    crate::inventory::rules::check_path(path).map_err(|why| OutPathError::Invalid {
        path: path.into(),
        host: host.clone(),
        why,
        out: out.display().to_string(),
    })?;
    if crate::inventory::rules::check_host_name(host.as_str()).is_err() {
        return Err(OutPathError::HostName {
            host: host.clone(),
            out: out.display().to_string(),
        });
    }
    let mut dest = PathBuf::from(host.as_str());
    for part in Path::new(path).components() {
        match part {
            std::path::Component::Normal(p) => dest.push(p),
            std::path::Component::RootDir => {}
            _ => {
                return Err(OutPathError::Escapes {
                    path: path.into(),
                    host: host.clone(),
                    host_dir: out.join(host.as_str()).display().to_string(),
                });
            }
        }
    }
    if dest.components().count() < 2 {
        // `dest: /`: no file can be written there.
        return Err(OutPathError::Invalid {
            path: path.into(),
            host: host.clone(),
            why: crate::inventory::rules::RuleViolation::Root,
            out: out.display().to_string(),
        });
    }
    Ok(dest)
}

/// Write a rendered file of `host` at `path` under `out` (which exists), new, `mode` exactly,
/// directories made with `dir_mode`, never through a link. The written path, under `out`.
pub fn write(
    out: &Path,
    host: &HostName,
    path: &str,
    bytes: &[u8],
    mode: u32,
    dir_mode: u32,
) -> Result<PathBuf, OutWriteError> {
    let relative = out_path(out, host, path)?;
    crate::confined::write_new(out, &relative, bytes, mode, dir_mode).map_err(|source| {
        OutWriteError::Io {
            path: out.join(&relative),
            source,
        }
    })
}

/// Why a file was not written under `render --out`.
#[derive(Debug, thiserror::Error)]
pub enum OutWriteError {
    #[error(transparent)]
    Path(#[from] OutPathError),
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_out_never_leaves_its_directory() {
        let out = Path::new("/tmp/out");
        let h = HostName::new("web-01");
        assert_eq!(
            out_path(out, &h, "/etc/a b.conf").unwrap(),
            Path::new("web-01/etc/a b.conf")
        );
        for bad in ["/../../../tmp/x", "/etc/../x", "relative", "/etc/a\nb", "/"] {
            assert!(out_path(out, &h, bad).is_err(), "{bad:?}");
        }
        for host in ["/root", "../../x", "", "..", ".", "a/b", "web\n01", "-x"] {
            let err = out_path(out, &HostName::new(host), "/.ssh/authorized_keys");
            assert!(
                matches!(err, Err(OutPathError::HostName { .. })),
                "{host:?}"
            );
        }
    }
}
