//! The inventory's values against the schema, at load: types with the value's own line (a
//! shadow parse keeps the spans), unknown names, secrets in plain text, required variables,
//! the roles; then the defaults and the optional groups.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::{Kind, Schema, VarSpec};
use crate::error::{Location, did_you_mean};
use crate::inventory::yaml::{location_of, parse};
use crate::inventory::{HostName, Inventory, InventoryError, Vars};

/// Where each variable's value stands in the inventory file: `vars:`, each host's and each
/// group's `vars:`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Shadow {
    #[serde(default)]
    pub(super) vars: BTreeMap<String, Spanned<IgnoredAny>>,
    #[serde(default)]
    pub(super) hosts: BTreeMap<String, Option<ShadowEntry>>,
    #[serde(default)]
    pub(super) groups: BTreeMap<String, Option<ShadowEntry>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ShadowEntry {
    #[serde(default)]
    pub(super) vars: BTreeMap<String, Spanned<IgnoredAny>>,
}

/// Values spanned by where they stand in the inventory file.
type Spans = BTreeMap<String, Spanned<IgnoredAny>>;

/// One layer of variables: its name in errors, its values, its location, their spans.
type Scope<'a> = (String, &'a Vars, Location, Option<&'a Spans>);

/// Checks every value the inventory sets against the schema, all at once; applies the
/// schema's defaults. Unknown variable names are warnings (a user's own templates may read
/// their own), with a did-you-mean over the schema's names.
pub fn apply(inv: &mut Inventory, schema: Schema) -> Result<(), Vec<InventoryError>> {
    let text = crate::inventory::load::read(&inv.path).map_err(|e| vec![e])?;
    let shadow: Shadow = parse(&inv.path, &text).unwrap_or_default();
    let at = |spans: Option<&Spanned<IgnoredAny>>, fallback: &Location| {
        spans
            .map(|s| location_of(&inv.path, &s.referenced))
            .unwrap_or_else(|| fallback.clone())
    };
    let file = Location::file_only(&inv.path);
    let mut scopes: Vec<Scope> = vec![("vars".into(), &inv.vars, file.clone(), Some(&shadow.vars))];
    for (name, g) in &inv.groups {
        let spans = shadow
            .groups
            .get(name)
            .and_then(|e| e.as_ref())
            .map(|e| &e.vars);
        scopes.push((
            format!("group {name}'s vars"),
            &g.vars,
            g.location.clone(),
            spans,
        ));
    }
    for (name, h) in &inv.hosts {
        let spans = shadow
            .hosts
            .get(name.as_str())
            .and_then(|e| e.as_ref())
            .map(|e| &e.vars);
        scopes.push((
            format!("host {name}'s vars"),
            &h.vars,
            h.location.clone(),
            spans,
        ));
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let secrets: Vec<&str> = inv.secrets.keys().map(String::as_str).collect();
    for (scope, vars, fallback, spans) in &scopes {
        for (name, value) in vars.iter() {
            let location = at(spans.and_then(|s| s.get(name)), fallback);
            let spec = schema.variables.get(name);
            if spec.is_none()
                && let Some(why) = super::characters(value, true)
            {
                errors.push(InventoryError::Yaml {
                    location: location.clone(),
                    message: format!("`{name}` in {scope}: {why}"),
                    key_path: name.clone(),
                    hint: Some(format!("remove it from the value of `{name}`")),
                });
                continue;
            }
            match spec {
                Some(spec) => {
                    if let Some(why) = spec.check(value) {
                        errors.push(InventoryError::Yaml {
                            location,
                            message: format!("`{name}` in {scope}: {why}"),
                            key_path: name.clone(),
                            hint: Some(match spec.kind {
                                Kind::Bool => format!(
                                    "write `{name}: true` or `{name}: false`, without quotes ({}: {})",
                                    schema.path.display(),
                                    spec.doc
                                ),
                                _ => format!(
                                    "`{name}` is {} ({}: {})",
                                    spec.describe(),
                                    schema.path.display(),
                                    spec.doc
                                ),
                            }),
                        });
                    }
                }
                // A secret's value in plain text, shown by every plan and log.
                // The file and line without a code frame: the frame would print the value.
                None if schema.secrets.contains_key(name) => errors.push(InventoryError::Yaml {
                    location: Location::file_only(&location.file),
                    message: format!(
                        "`{name}` in {scope} (line {}) is a secret of the stack ({}), written in plain text",
                        location.line,
                        schema.secrets[name].doc.trim_end_matches('.')
                    ),
                    key_path: name.clone(),
                    hint: Some(format!(
                        "move it under `secrets:` as a reference, e.g. `{name}: {{ file: secrets/{name} }}` (a 0600 file) or `{{ env: FOOBAR_{} }}`; foobar reads it when it runs and never shows it",
                        name.to_ascii_uppercase()
                    )),
                }),
                None if secrets.contains(&name.as_str()) => {}
                None => {
                    let names = schema.variables.keys().map(String::as_str);
                    let mut w = format!(
                        "{location}: warning: `{name}` in {scope} is not a variable of the stack ({})",
                        schema.path.display()
                    );
                    if let Some(c) = did_you_mean(name, names) {
                        w.push_str(&format!("; did you mean `{c}`?"));
                    } else {
                        w.push_str("; only your own templates read it");
                    }
                    warnings.push(w);
                }
            }
        }
    }
    for (name, spec) in &schema.variables {
        let Some(group) = &spec.required_with else {
            continue;
        };
        let Some(g) = inv.groups.get(group) else {
            continue;
        };
        for host in &g.hosts {
            if !inv.host_vars(host).contains_key(name) {
                errors.push(missing(inv, host, name, spec, group));
            }
        }
    }
    for (role, (group, location)) in &inv.roles {
        if !schema.roles.contains_key(role) {
            let hint = match did_you_mean(role, schema.roles.keys().map(String::as_str)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!(
                    "the stack's roles: {}",
                    schema.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            errors.push(InventoryError::Topology {
                location: location.clone(),
                message: format!("`{role}` (mapped to group `{group}`) is not a role of the stack"),
                hint,
            });
        }
    }
    for role in schema.roles.keys() {
        let Some(g) = inv.groups.get(role) else {
            continue;
        };
        if g.hosts.is_empty() && !schema.optional_groups.contains(role) {
            let (name, location) = match inv.roles.get(role) {
                Some((group, at)) => (format!("role `{role}` (group `{group}`)"), at.clone()),
                None => (format!("role `{role}`"), g.location.clone()),
            };
            errors.push(InventoryError::Topology {
                location,
                message: format!("{name} has no host"),
                hint: format!(
                    "put the hosts that are {} in it ({})",
                    role_words(role),
                    schema.roles[role].trim_end_matches('.')
                ),
            });
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| {
            crate::error::Diagnostic::location(e).map(|l| (l.file.clone(), l.line, l.column))
        });
        return Err(errors);
    }
    inv.warnings.extend(warnings);
    for name in &schema.optional_groups {
        if !inv.groups.contains_key(name) && !inv.hosts.contains_key(&HostName::new(name.clone())) {
            inv.groups.insert(
                name.clone(),
                crate::inventory::Group {
                    name: name.clone(),
                    hosts: vec![],
                    children: vec![],
                    vars: Vars::new(),
                    depth: 0,
                    location: file.clone(),
                },
            );
        }
    }
    inv.schema = Some(std::sync::Arc::new(schema));
    Ok(())
}

fn role_words(role: &str) -> &str {
    match role {
        "loadbalancer" => "load balancers",
        "web" => "web servers",
        "db_primary" => "the database primary",
        "db_replica" => "database replicas",
        _ => role,
    }
}

fn missing(
    inv: &Inventory,
    host: &HostName,
    name: &str,
    spec: &VarSpec,
    group: &str,
) -> InventoryError {
    InventoryError::Topology {
        location: inv.hosts[host].location.clone(),
        message: format!("{host} is in group `{group}`, which needs `{name}`, and it is not set"),
        hint: format!(
            "set `{name}` under `vars:` (or under {host}'s vars) in {}: {}",
            inv.path.display(),
            spec.doc
        ),
    }
}
