//! `render --out DIR`: a host and one of its rendered paths in, the file's place under
//! `DIR/host` out, or an [`OutPathError`] for a path that could leave `DIR`.

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
    #[error("{path} on {host} leaves {host_dir}")]
    Escapes {
        path: String,
        host: HostName,
        host_dir: String,
    },
}

/// Where `render --out DIR` writes `path` of `host`: always inside `DIR/host`. A path that
/// is not absolute and normalized (`/../../tmp/x`) is refused, never followed out of DIR.
pub fn out_path(out: &Path, host: &HostName, path: &str) -> Result<PathBuf, OutPathError> {
    crate::inventory::rules::check_path(path).map_err(|why| OutPathError::Invalid {
        path: path.into(),
        host: host.clone(),
        why,
        out: out.display().to_string(),
    })?;
    let host_dir = out.join(host.as_str());
    let mut dest = host_dir.clone();
    for part in Path::new(path).components() {
        match part {
            std::path::Component::Normal(p) => dest.push(p),
            std::path::Component::RootDir => {}
            _ => {
                return Err(OutPathError::Escapes {
                    path: path.into(),
                    host: host.clone(),
                    host_dir: host_dir.display().to_string(),
                });
            }
        }
    }
    Ok(dest)
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
            Path::new("/tmp/out/web-01/etc/a b.conf")
        );
        for bad in ["/../../../tmp/x", "/etc/../x", "relative", "/etc/a\nb"] {
            assert!(out_path(out, &h, bad).is_err(), "{bad:?}");
        }
    }
}
