//! Groups and roles at load: `children:` resolved once each (a depth limit bounds the
//! walk), and `roles:` mapped to the inventory's own group names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_saphyr::Spanned;

use super::load_checks::check_name;
use super::yaml::{key_of, location_of};
use super::{Group, Host, HostName, InventoryError, Vars};
use crate::error::did_you_mean;

use super::load::RawGroup;

/// `roles:`: each role becomes a group of the mapped group's hosts (its vars stay on the
/// group they are written on), so plays, templates and the topology read roles by their
/// names whatever the inventory calls its groups.
pub(super) fn map_roles(
    path: &Path,
    groups: &mut BTreeMap<String, Group>,
    raw: BTreeMap<String, Spanned<String>>,
    problems: &mut Vec<InventoryError>,
) -> BTreeMap<String, (String, super::Location)> {
    let mut out = BTreeMap::new();
    for (role, target) in raw {
        let location = location_of(path, &target.referenced);
        let group = target.value;
        if let Err(e) = check_name(&location, "role", &role) {
            problems.push(e);
            continue;
        }
        let Some(hosts) = groups.get(&group).map(|g| g.hosts.clone()) else {
            let names: Vec<String> = groups.keys().cloned().collect();
            problems.push(InventoryError::Topology {
                location,
                message: format!(
                    "role `{role}` is mapped to `{group}`, which is no group of the inventory"
                ),
                hint: match did_you_mean(&group, names.iter().map(String::as_str)) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!(
                        "map `{role}` to one of the inventory's groups: {}",
                        names.join(", ")
                    ),
                },
            });
            continue;
        };
        if role != group && groups.contains_key(&role) {
            problems.push(InventoryError::Topology {
                location,
                message: format!(
                    "role `{role}` is mapped to group `{group}`, and the inventory has a group `{role}` too"
                ),
                hint: format!("remove the mapping, or rename the group `{role}`"),
            });
            continue;
        }
        if role != group {
            groups.insert(
                role.clone(),
                Group {
                    name: role.clone(),
                    hosts,
                    children: vec![],
                    vars: Vars::new(),
                    depth: 0,
                    location: location.clone(),
                },
            );
        }
        out.insert(role, (group, location));
    }
    out
}

/// How deep groups may nest through `children:`: far beyond any real inventory, and a bound
/// on the walk.
pub(super) const MAX_GROUP_DEPTH: usize = 64;

pub(super) fn resolve_groups(
    path: &Path,
    text: &str,
    hosts: &BTreeMap<HostName, Host>,
    raw: BTreeMap<String, Spanned<RawGroup>>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, Group>, InventoryError> {
    let at = |l: &serde_saphyr::Location| location_of(path, l);
    for (name, g) in &raw {
        check_name(&key_of(text, &at(&g.referenced)), "group", name)?;
        // Harmless (a host is in a group once), but likely a slip for another name.
        for (list, entries) in [("hosts", &g.value.hosts), ("children", &g.value.children)] {
            let mut seen = BTreeSet::new();
            for e in entries {
                if !seen.insert(e.value.as_str()) {
                    warnings.push(format!(
                        "warning: {}: group `{name}` lists `{}` twice under `{list}:`; was another name meant?",
                        at(&e.referenced),
                        e.value
                    ));
                }
            }
        }
        if hosts.contains_key(&HostName::new(name.clone())) {
            return Err(InventoryError::NameClash {
                location: at(&g.referenced),
                name: name.clone(),
            });
        }
        for h in &g.value.hosts {
            if !hosts.contains_key(&HostName::new(h.value.clone())) {
                let hint = match did_you_mean(&h.value, hosts.keys().map(|k| k.as_str())) {
                    Some(c) => format!("did you mean `{c}`? hosts are declared under `hosts:`"),
                    None => "declare the host under `hosts:` first".to_string(),
                };
                return Err(InventoryError::UnknownHost {
                    location: at(&h.referenced),
                    group: name.clone(),
                    host: h.value.clone(),
                    hint,
                });
            }
        }
        for c in &g.value.children {
            if !raw.contains_key(&c.value) {
                let hint = match did_you_mean(&c.value, raw.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "declare the group under `groups:`".to_string(),
                };
                return Err(InventoryError::UnknownGroup {
                    location: at(&c.referenced),
                    group: name.clone(),
                    child: c.value.clone(),
                    hint,
                });
            }
        }
    }

    // Depth-first over children, each group resolved once (its hosts and its children's,
    // memoized): linear in groups and `children:` entries, where walking every path was
    // exponential (a ladder of 40 levels never finished). Detects cycles (the groups around
    // one and the `children:` entry that closes it) and nesting deeper than the limit.
    enum Walk {
        Cycle(Vec<String>, Option<serde_saphyr::Location>),
        TooDeep(Vec<String>, Option<serde_saphyr::Location>),
    }
    fn collect(
        name: &str,
        raw: &BTreeMap<String, Spanned<RawGroup>>,
        stack: &mut Vec<String>,
        done: &mut BTreeMap<String, BTreeSet<HostName>>,
    ) -> Result<(), Walk> {
        if done.contains_key(name) {
            return Ok(());
        }
        let closing = || {
            stack.last().and_then(|parent| {
                raw[parent]
                    .value
                    .children
                    .iter()
                    .find(|c| c.value == name)
                    .map(|c| c.referenced)
            })
        };
        if let Some(i) = stack.iter().position(|s| s == name) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(name.to_string());
            return Err(Walk::Cycle(cycle, closing()));
        }
        if stack.len() >= MAX_GROUP_DEPTH {
            let mut chain = stack.clone();
            chain.push(name.to_string());
            return Err(Walk::TooDeep(chain, closing()));
        }
        stack.push(name.to_string());
        let g = &raw[name].value;
        let mut members: BTreeSet<HostName> = g
            .hosts
            .iter()
            .map(|h| HostName::new(h.value.clone()))
            .collect();
        for c in &g.children {
            collect(&c.value, raw, stack, done)?;
            members.extend(done[&c.value].iter().cloned());
        }
        stack.pop();
        done.insert(name.to_string(), members);
        Ok(())
    }

    let mut depth: BTreeMap<String, usize> = raw.keys().map(|k| (k.clone(), 0)).collect();
    let mut done: BTreeMap<String, BTreeSet<HostName>> = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for (name, g) in &raw {
        collect(name, &raw, &mut Vec::new(), &mut done).map_err(|walk| match walk {
            Walk::Cycle(cycle, closing) => InventoryError::GroupCycle {
                location: at(closing.as_ref().unwrap_or(&g.referenced)),
                cycle: cycle.join(" -> "),
            },
            Walk::TooDeep(chain, closing) => InventoryError::GroupTooDeep {
                location: at(closing.as_ref().unwrap_or(&g.referenced)),
                chain: if chain.len() > 6 {
                    format!(
                        "{} -> ... -> {}",
                        chain[..3].join(" -> "),
                        chain[chain.len() - 3..].join(" -> ")
                    )
                } else {
                    chain.join(" -> ")
                },
                limit: MAX_GROUP_DEPTH,
            },
        })?;
        // Sorted by the inventory's host order (alphabetical) for stable output.
        let members: Vec<HostName> = done[name].iter().cloned().collect();
        groups.insert(
            name.clone(),
            Group {
                name: name.clone(),
                hosts: members,
                children: g.value.children.iter().map(|c| c.value.clone()).collect(),
                vars: g.value.vars.clone(),
                depth: 0,
                location: at(&g.referenced),
            },
        );
    }
    // A child is one deeper than its deepest parent; no cycles remain, so this settles.
    for _ in 0..raw.len() {
        let mut changed = false;
        for (name, g) in &raw {
            let d = depth[name];
            for c in &g.value.children {
                if depth[&c.value] < d + 1 {
                    depth.insert(c.value.clone(), d + 1);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (name, g) in groups.iter_mut() {
        g.depth = depth[name];
    }
    Ok(groups)
}
