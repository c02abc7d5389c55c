//! `foobar vars [HOST]`: every variable a host sees, its value and where it came from (the
//! stack's default, the inventory, a group, the host), as `ansible-inventory --host` shows
//! them. Secrets are listed by name, never read.

use clap::Args;

use super::{CliError, Common};
use crate::error::ExitCategory;
use crate::inventory::{self, HostName, schema};

#[derive(Debug, Args)]
pub struct VarsArgs {
    #[command(flatten)]
    pub common: Common,
    /// The host; every host of the inventory (or of --limit) when left out.
    pub host: Option<String>,
}

pub fn run(args: VarsArgs) -> Result<ExitCategory, CliError> {
    let VarsArgs { common, host } = args;
    let inv = inventory::load_stack_inventory(&common.inventory, &common.playbook)?;
    for w in &inv.warnings {
        crate::warn!("{w}\n");
    }
    let hosts: Vec<HostName> = match &host {
        Some(h) => {
            let name = HostName::new(h.clone());
            if !inv.hosts.contains_key(&name) {
                let names = inv.hosts.keys().map(|h| h.as_str());
                return Err(CliError::Usage {
                    message: format!("`{h}` is no host of {}", inv.path.display()),
                    hint: match crate::error::did_you_mean(h, names) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => "name a host of the inventory's `hosts:`".into(),
                    },
                });
            }
            vec![name]
        }
        None => inv.limit(&common.limit)?.into_iter().collect(),
    };
    let secret_names: Vec<&String> = inv.secrets.keys().collect();
    if common.json {
        let doc: serde_json::Map<String, serde_json::Value> = hosts
            .iter()
            .map(|h| {
                let vars: serde_json::Map<String, serde_json::Value> = schema::sources(&inv, h)
                    .into_iter()
                    .map(|(name, value, source)| {
                        (
                            name,
                            serde_json::json!({ "value": value, "source": source }),
                        )
                    })
                    .collect();
                (h.to_string(), serde_json::Value::Object(vars))
            })
            .collect();
        let out = serde_json::json!({
            "format_version": 1,
            "hosts": doc,
            "secrets": secret_names,
            "summary": { "hosts": hosts.len(), "secrets": secret_names.len() },
        });
        crate::say!(
            "{}\n",
            serde_json::to_string_pretty(&out).expect("JSON of values")
        );
        return Ok(ExitCategory::Ok);
    }
    for h in &hosts {
        crate::say!("{h}:\n");
        for (name, value, source) in schema::sources(&inv, h) {
            let shown = match &value {
                serde_json::Value::String(s) => format!("{s:?}"),
                v => v.to_string(),
            };
            crate::say!("  {name} = {shown}    # {source}\n");
        }
        for name in &secret_names {
            crate::say!("  {name} = <secret:{name}>    # a secret, not read\n");
        }
    }
    Ok(ExitCategory::Ok)
}
