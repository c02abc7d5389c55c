//! `foobar.toml`: optional project defaults, found in the working directory or the nearest
//! parent that has one, up to the repository's root, `$HOME` or the filesystem's boundary,
//! and only when its owner is the user (or root) and no one else may write it
//! ([`crate::inventory::project::find_config`]). Paths in it are relative to its own
//! directory. A file used from outside the working directory is named on stderr.
//! Precedence: command-line flag > `FOOBAR_INVENTORY`/`FOOBAR_PLAYBOOK` > foobar.toml >
//! built-in default.
//!
//! ```toml
//! inventory = "inventories/lab.yml"
//! playbook = "playbooks/site.yml"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Diagnostic;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub inventory: Option<PathBuf>,
    pub playbook: Option<PathBuf>,
}

/// The foobar.toml a run in `start` uses, and a warning for each one passed over.
pub fn find(start: &Path) -> (Option<PathBuf>, Vec<String>) {
    crate::inventory::project::find_config(start)
}

/// A foobar.toml that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
}

impl Diagnostic for ConfigError {
    fn hint(&self) -> Option<String> {
        Some("foobar.toml may set `inventory` and `playbook` (paths relative to it)".into())
    }
}

/// Read a foobar.toml, its paths made relative to the working directory's view of it.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    for p in [&mut config.inventory, &mut config.playbook]
        .into_iter()
        .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok(config)
}

/// Make the config's paths the defaults of every subcommand's `--inventory`/`--playbook`,
/// nested ones (`backup now`, `backup list`) included.
pub fn apply_defaults(mut cmd: clap::Command, config: &Config) -> clap::Command {
    for (id, value) in [
        ("inventory", &config.inventory),
        ("playbook", &config.playbook),
    ] {
        if let Some(v) = value
            && cmd.get_arguments().any(|a| a.get_id() == id)
        {
            // clap keeps defaults as `&'static str`; once per process.
            let v: &'static str = Box::leak(v.display().to_string().into_boxed_str());
            cmd = cmd.mut_arg(id, |a| a.default_value(v));
        }
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |sub| apply_defaults(sub, config));
    }
    cmd
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn nested_subcommands_take_the_defaults_too() {
        let config = Config {
            inventory: Some(PathBuf::from("/site/inventory.yml")),
            playbook: None,
        };
        let cmd = apply_defaults(crate::cli::Cli::command(), &config);
        for path in [
            &["plan"][..],
            &["backup", "now"],
            &["backup", "list"],
            &["backups", "list"],
        ] {
            let mut args = vec!["foobar"];
            args.extend_from_slice(path);
            let matches = cmd.clone().try_get_matches_from(&args).unwrap();
            let mut m = &matches;
            while let Some((_, sub)) = m.subcommand() {
                m = sub;
            }
            assert_eq!(
                m.get_one::<PathBuf>("inventory").unwrap(),
                Path::new("/site/inventory.yml"),
                "{path:?}"
            );
        }
    }
}
