//! `foobar render`: every managed file rendered offline (no SSH), secrets masked.

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
}

pub async fn run(args: RenderArgs) -> Result<ExitCategory, CliError> {
    let RenderArgs { common, out } = args;
    let session = Session::load(&common)?;
    let ctx = session.render_context()?;
    let desired = render_all(&ctx, &session.hosts)?;
    let mut written = 0;
    let mut tree: BTreeMap<HostName, Vec<json::RenderedFile>> = BTreeMap::new();
    let mut record = |host: &HostName, path: &str, content: &str| -> Result<(), CliError> {
        let dest = write_rendered(&out, host, path, content.as_bytes())?;
        tree.entry(host.clone())
            .or_default()
            .push(json::RenderedFile {
                path: path.to_string(),
                written_to: dest.display().to_string(),
                content: content.to_string(),
            });
        Ok(())
    };
    for (host, state) in &desired {
        for e in state.entries() {
            if let EntryKind::File { content, .. } = &e.kind {
                let text = ctx.redactor.redact(&String::from_utf8_lossy(content));
                record(host, &e.path, &text)?;
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
                .map_err(|message| CliError::Usage {
                    message,
                    hint: "check `flavor` and `mysql_version` in the inventory".into(),
                })?;
            record(host, "/foobar/replication.sql", &sql)?;
            written += 1;
        }
    }
    if common.json {
        print!("{}", json::document(&json::RenderDocument::new(tree)));
    } else if !common.quiet {
        eprintln!(
            "rendered {} for {} into {}",
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
    let dest = crate::render::out_path(out, host, path).map_err(|message| CliError::Usage {
        message,
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
