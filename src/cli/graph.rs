//! `foobar graph`: the stack drawn from the inventory (Mermaid, Graphviz dot, or SVG through
//! Graphviz's `dot`); with `--live`, coloured by what `verify` finds.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::session::{Session, Support, render_all};
use super::{CliError, Common};
use crate::error::ExitCategory;
use crate::report::{Progress, Reporter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Mermaid flowchart text (renders in GitHub Markdown; needs nothing installed).
    Mermaid,
    /// Graphviz dot text.
    Dot,
    /// SVG, laid out by Graphviz's `dot` (must be installed).
    Svg,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub common: Common,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Mermaid)]
    pub format: Format,
    /// Run `verify` and colour every node and edge green or red (failing checks as
    /// tooltips); exit 3 when something fails.
    #[arg(long)]
    pub live: bool,
    /// Write to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// With --live: largest acceptable replication lag, in seconds.
    #[arg(long, default_value_t = 10)]
    pub max_lag: u64,
}

pub async fn run(args: GraphArgs) -> Result<ExitCategory, CliError> {
    let GraphArgs {
        common,
        format,
        live,
        out,
        max_lag,
    } = args;
    // Drawing needs only the inventory (no secrets); --live needs everything verify does.
    let inventory = crate::inventory::load_stack_inventory(&common.inventory, &common.playbook)?;
    let stack = crate::graph::stack(&inventory);
    let mut exit = ExitCategory::Ok;
    let statuses = if live {
        let session = Session::load(&common)?;
        let ctx = session.render_context()?;
        let desired = render_all(&ctx, &session.hosts)?;
        let reporter = Progress::new(common.verbose);
        let conn = session
            .connect(&session.hosts, Support::default(), common.forks, &reporter)
            .await;
        let input = super::verify::verify_input(&session, &desired, &conn, max_lag, Duration::ZERO);
        let health = crate::verify::verify(&input).await;
        conn.finish().await;
        reporter.finish();
        if !health.healthy() {
            exit = ExitCategory::HostFailed;
        }
        Some(crate::graph::statuses(&stack, &health))
    } else {
        None
    };
    let bytes = match format {
        Format::Mermaid => crate::graph::mermaid(&stack, statuses.as_ref()).into_bytes(),
        Format::Dot => crate::graph::dot(&stack, statuses.as_ref()).into_bytes(),
        Format::Svg => svg(&crate::graph::dot(&stack, statuses.as_ref()))?,
    };
    match &out {
        Some(path) => {
            std::fs::write(path, &bytes).map_err(|e| CliError::Usage {
                message: format!("cannot write {}: {e}", path.display()),
                hint: "check the directory exists and is writable".into(),
            })?;
            crate::warn!("graph written to {}\n", path.display());
        }
        None => {
            // Text (Mermaid, dot, SVG): through the Redactor like everything printed.
            crate::say!("{}", String::from_utf8_lossy(&bytes));
        }
    }
    Ok(exit)
}

/// Lay out `dot` text as SVG with Graphviz's `dot`.
fn svg(dot: &str) -> Result<Vec<u8>, CliError> {
    let child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::Usage {
                message: "SVG needs Graphviz's `dot`, which is not installed (not found on PATH)"
                    .into(),
                hint: "install Graphviz (`apt-get install graphviz`), or use `--format dot` or `--format mermaid`".into(),
            });
        }
        Err(e) => return Err(anyhow::anyhow!("cannot run Graphviz's `dot`: {e}").into()),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write to Graphviz's `dot`: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| anyhow::anyhow!("Graphviz's `dot` failed: {e}"))?;
    if !output.status.success() {
        return Err(anyhow::anyhow!(
            "Graphviz's `dot` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(output.stdout)
}
