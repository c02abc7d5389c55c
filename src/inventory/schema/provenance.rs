//! Where each value a host sees came from: the layer that won, with its file and line.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::check::Shadow;
use crate::error::Location;
use crate::inventory::yaml::{location_of, parse};
use crate::inventory::{HostName, Inventory};

/// Where a host's variable got its value, lowest layer first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// The stack's default (`variables.yml`).
    Default { at: String },
    /// The inventory's `vars:`.
    Inventory { at: String },
    /// A group's vars.
    Group { group: String, at: String },
    /// The host's own vars.
    Host { at: String },
    /// Set by foobar (`inventory_hostname`, `private_ip`, `group_names`).
    Fact,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default { at } => write!(f, "default ({at})"),
            Source::Inventory { at } => write!(f, "inventory vars ({at})"),
            Source::Group { group, at } => write!(f, "group {group} ({at})"),
            Source::Host { at } => write!(f, "host vars ({at})"),
            Source::Fact => f.write_str("set by foobar"),
        }
    }
}

/// Each variable `host` sees, its value and where the value came from (the layer that won).
pub fn sources(inv: &Inventory, host: &HostName) -> Vec<(String, Value, Source)> {
    let text = std::fs::read_to_string(&inv.path).unwrap_or_default();
    let shadow: Shadow = parse(&inv.path, &text).unwrap_or_default();
    let line =
        |spans: Option<&BTreeMap<String, Spanned<IgnoredAny>>>, name: &str, fallback: &Location| {
            spans
                .and_then(|s| s.get(name))
                .map(|s| location_of(&inv.path, &s.referenced))
                .unwrap_or_else(|| fallback.clone())
                .to_string()
        };
    let file = Location::file_only(&inv.path);
    let mut out: BTreeMap<String, (Value, Source)> = BTreeMap::new();
    let base = inv.host_vars(host);
    if let Some(schema) = &inv.schema {
        for (name, v) in schema.defaults_for(&base) {
            let at = schema.variables[&name].location.to_string();
            out.insert(name, (v, Source::Default { at }));
        }
    }
    for (name, v) in &inv.vars {
        let at = line(Some(&shadow.vars), name, &file);
        out.insert(name.clone(), (v.clone(), Source::Inventory { at }));
    }
    for g in inv.groups_of(host) {
        let spans = shadow
            .groups
            .get(&g.name)
            .and_then(|e| e.as_ref())
            .map(|e| &e.vars);
        for (name, v) in &g.vars {
            let at = line(spans, name, &g.location);
            out.insert(
                name.clone(),
                (
                    v.clone(),
                    Source::Group {
                        group: g.name.clone(),
                        at,
                    },
                ),
            );
        }
    }
    let h = &inv.hosts[host];
    let spans = shadow
        .hosts
        .get(host.as_str())
        .and_then(|e| e.as_ref())
        .map(|e| &e.vars);
    for (name, v) in &h.vars {
        let at = line(spans, name, &h.location);
        out.insert(name.clone(), (v.clone(), Source::Host { at }));
    }
    for (name, v) in base {
        out.entry(name).or_insert((v, Source::Fact));
    }
    out.into_iter().map(|(k, (v, s))| (k, v, s)).collect()
}
