//! `foobar render`: every managed file rendered offline (no SSH), each secret as its
//! placeholder `<secret:NAME>` (no secret needs to be set), or with `--with-secrets` the real
//! values into a tree only the current user can read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::session::{Session, render_all};
use super::{CliError, Common};
use crate::apply::database;
use crate::error::ExitCategory;
use crate::inventory::{self, HostName};
use crate::render::EntryKind;
use crate::report::{human, json};

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub common: Common,
    /// Directory to write into, as DIR/<host>/<path> (created if missing). It must be empty
    /// or hold an earlier render, whose files are removed first (they are listed in
    /// DIR/.foobar-render); anything else there is refused.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Render the real secret values (they must be set), into a tree only the current user
    /// can read (directories 0700, files 0600). For debugging.
    #[arg(long)]
    pub with_secrets: bool,
}

/// The list of what a render wrote, inside its `--out` directory, one path per line relative
/// to it: the next render removes exactly those files, and only a directory holding this list
/// (or an empty one) is written into.
pub const MANIFEST: &str = ".foobar-render";

/// The mode of `replication.sql`: it is no file on a host, and it names the password.
const REPLICATION_SQL_MODE: u32 = 0o600;

pub async fn run(args: RenderArgs) -> Result<ExitCategory, CliError> {
    let RenderArgs {
        common,
        out,
        with_secrets,
    } = args;
    let session = Session::load_with(&common, with_secrets)?;
    let ctx = session.render_context()?;
    let desired = render_all(&ctx, &session.hosts)?;
    if with_secrets {
        check_owned(&out)?;
    }
    clear_earlier_render(&out)?;
    // Without --with-secrets the secrets are placeholders: the files hold none.
    let write = if with_secrets {
        create_private_dir(&out)?;
        write_private
    } else {
        create_dir(&out)?;
        write_rendered
    };
    let mut written: Vec<PathBuf> = Vec::new();
    let mut tree: BTreeMap<HostName, Vec<json::RenderedFile>> = BTreeMap::new();
    let mut record =
        |host: &HostName, path: &str, content: &[u8], mode: u32| -> Result<(), CliError> {
            let dest = write(&out, host, path, content, mode)?;
            if let Ok(relative) = dest.strip_prefix(&out) {
                written.push(relative.to_path_buf());
            }
            tree.entry(host.clone())
                .or_default()
                .push(json::RenderedFile {
                    path: path.to_string(),
                    written_to: dest.display().to_string(),
                    // Printed through `say!`: with --with-secrets the values are masked there.
                    content: String::from_utf8_lossy(content).into_owned(),
                });
            Ok(())
        };
    for (host, state) in &desired {
        for e in state.entries() {
            if let EntryKind::File { content, mode, .. } = &e.kind {
                record(host, &e.path, content, *mode)?;
            }
        }
        if state
            .plays
            .iter()
            .any(|p| p.database == Some(inventory::DatabaseRole::Replica))
            && let Some(cfg) = &session.database
        {
            let sql = database::configured_replication_sql(cfg, &session.inventory.host_vars(host))
                .map_err(|e| CliError::Usage {
                    message: e.to_string(),
                    hint: "check `flavor` and `mysql_version` in the inventory".into(),
                })?;
            record(
                host,
                "/foobar/replication.sql",
                sql.as_bytes(),
                REPLICATION_SQL_MODE,
            )?;
        }
    }
    write_manifest(&out, &written)?;
    if common.json {
        crate::say!("{}", json::document(&json::RenderDocument::new(tree)));
    } else if !common.quiet {
        crate::warn!(
            "rendered {} for {} into {}\n",
            human::count(written.len(), "file"),
            human::count(desired.len(), "host"),
            out.display()
        );
    }
    Ok(ExitCategory::Ok)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> CliError {
    anyhow::anyhow!("cannot {what} {}: {e}", path.display()).into()
}

/// Make `out` ready to be written: missing or empty, fine; holding an earlier render, its
/// files (as listed in its manifest) are removed, and the directories left empty; anything
/// else is refused, so a typo in `--out` never mixes a render into unrelated files.
fn clear_earlier_render(out: &Path) -> Result<(), CliError> {
    let mut entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(CliError::Usage {
                message: format!("--out {} is a file, not a directory", out.display()),
                hint: "name a new or empty directory".into(),
            });
        }
        Err(e) => return Err(io_error("read", out, e)),
    };
    if entries.next().is_none() {
        return Ok(());
    }
    let manifest = out.join(MANIFEST);
    let list = match crate::confined::read_regular_text(&manifest, 64 << 20) {
        Ok(list) => list,
        Err(crate::confined::ReadError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(CliError::Usage {
                message: format!(
                    "--out {} is not empty and holds no earlier render (no {MANIFEST} in it)",
                    out.display()
                ),
                hint: "name a new or empty directory, or one an earlier `foobar render` wrote (its files are then replaced)".into(),
            });
        }
        Err(e) => return Err(anyhow::anyhow!("{e}").into()),
    };
    let mut dirs = std::collections::BTreeSet::new();
    for line in list.lines().filter(|l| !l.is_empty()) {
        let relative = Path::new(line);
        // Only what a render can have written: relative paths, down from `out`.
        if !relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            continue;
        }
        let path = out.join(relative);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                std::fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?
            }
            _ => continue,
        }
        let mut parent = relative.parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_path_buf());
            parent = p.parent();
        }
    }
    // Deepest first; a directory that still holds something (the user's) stays.
    for dir in dirs.iter().rev() {
        let _ = std::fs::remove_dir(out.join(dir));
    }
    std::fs::remove_file(&manifest).map_err(|e| io_error("remove", &manifest, e))
}

fn write_manifest(out: &Path, written: &[PathBuf]) -> Result<(), CliError> {
    if written.is_empty() && std::fs::read_dir(out).is_err() {
        // Nothing rendered and no directory made: leave no trace.
        return Ok(());
    }
    let mut list = String::new();
    for w in written {
        list.push_str(&w.display().to_string());
        list.push('\n');
    }
    // 0600 like a `--with-secrets` tree's files (it holds only paths).
    crate::confined::write_new(out, Path::new(MANIFEST), list.as_bytes(), 0o600, 0o700)
        .map_err(|e| io_error("write", &out.join(MANIFEST), e))?;
    Ok(())
}

/// `--with-secrets` writes real values: into a directory of the caller's own only, never one
/// another user made (and could read, or have planted links in).
fn check_owned(out: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("read", out, e)),
    };
    let me = crate::confined::current_uid();
    if meta.file_type().is_symlink() || meta.uid() != me {
        return Err(CliError::Usage {
            message: format!(
                "--out {} {}: refusing to write secrets into it",
                out.display(),
                if meta.file_type().is_symlink() {
                    "is a symbolic link".to_string()
                } else {
                    format!("belongs to uid {}, not to you (uid {me})", meta.uid())
                }
            ),
            hint: "with --with-secrets, name a new directory (it is made 0700) or one of your own"
                .into(),
        });
    }
    Ok(())
}

fn render_error(e: crate::render::OutWriteError) -> CliError {
    match e {
        crate::render::OutWriteError::Path(e) => CliError::Usage {
            message: e.to_string(),
            hint:
                "paths on hosts must be absolute and normalized (no `..`), host names plain words"
                    .into(),
        },
        e @ crate::render::OutWriteError::Io { .. } => anyhow::anyhow!("{e}").into(),
    }
}

/// A rendered file, its permission bits as on the host (`mode:`; set-id and sticky bits
/// left out: this is a tree to read, not to run).
fn write_rendered(
    out: &Path,
    host: &HostName,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<PathBuf, CliError> {
    crate::render::write_out(out, host, path, bytes, mode & 0o777, 0o755).map_err(render_error)
}

fn create_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))
}

fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()).into())
}

/// `render --with-secrets`: real values, readable by the current user only (directories
/// 0700, files 0600), through the same confined writer.
fn write_private(
    out: &Path,
    host: &HostName,
    path: &str,
    bytes: &[u8],
    _mode: u32,
) -> Result<PathBuf, CliError> {
    crate::render::write_out(out, host, path, bytes, 0o600, 0o700).map_err(render_error)
}
