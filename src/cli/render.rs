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
    #[arg(long)]
    pub out: PathBuf,
    /// Render the real secret values (they must be set), into a tree only the current user
    /// can read (directories 0700, files 0600). For debugging.
    #[arg(long)]
    pub with_secrets: bool,
}

pub async fn run(args: RenderArgs) -> Result<ExitCategory, CliError> {
    let RenderArgs {
        common,
        out,
        with_secrets,
    } = args;
    let session = Session::load_with(&common, with_secrets)?;
    let ctx = session.render_context()?;
    let desired = render_all(&ctx, &session.hosts)?;
    // Without --with-secrets the secrets are placeholders: the files hold none.
    let write = if with_secrets {
        create_private_dir(&out)?;
        write_private
    } else {
        write_rendered
    };
    let mut written = 0;
    let mut tree: BTreeMap<HostName, Vec<json::RenderedFile>> = BTreeMap::new();
    let mut record = |host: &HostName, path: &str, content: &[u8]| -> Result<(), CliError> {
        let dest = write(&out, host, path, content)?;
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
            if let EntryKind::File { content, .. } = &e.kind {
                record(host, &e.path, content)?;
                written += 1;
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
            record(host, "/foobar/replication.sql", sql.as_bytes())?;
            written += 1;
        }
    }
    if common.json {
        crate::say!("{}", json::document(&json::RenderDocument::new(tree)));
    } else if !common.quiet {
        crate::warn!(
            "rendered {} for {} into {}\n",
            human::count(written, "file"),
            human::count(desired.len(), "host"),
            out.display()
        );
    }
    Ok(ExitCategory::Ok)
}

fn write_rendered(
    out: &Path,
    host: &HostName,
    path: &str,
    bytes: &[u8],
) -> Result<PathBuf, CliError> {
    let dest = crate::render::out_path(out, host, path).map_err(|e| CliError::Usage {
        message: e.to_string(),
        hint: "paths on hosts must be absolute and normalized (no `..`)".into(),
    })?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&dest, bytes)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dest.display()))?;
    Ok(dest)
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
/// 0700, files created 0600, never widened).
fn write_private(
    out: &Path,
    host: &HostName,
    path: &str,
    bytes: &[u8],
) -> Result<PathBuf, CliError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dest = out.join(host.as_str()).join(path.trim_start_matches('/'));
    let mut dir = out.to_path_buf();
    if let Some(parent) = dest.parent().and_then(|p| p.strip_prefix(out).ok()) {
        for part in parent.components() {
            dir.push(part);
            create_private_dir(&dir)?;
        }
    }
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&dest)
        .and_then(|mut f| {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(bytes)
        });
    written.map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dest.display()))?;
    Ok(dest)
}
