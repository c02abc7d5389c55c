//! The inventory file's YAML shape and its validation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::rules;
use super::topology::{DATABASE_PRIMARY, DATABASE_REPLICAS, Topology};
use super::yaml::{key_in_block, key_of, location_of, parse};
use super::{
    Group, Host, HostName, Inventory, InventoryError, Login, SecretRef, SecretSource, SshDefaults,
    Vars, relative_to,
};
use crate::error::did_you_mean;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    user: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    identity_file: Option<String>,
    ssh_config: Option<String>,
    known_hosts_file: Option<String>,
    strict_host_key_checking: Option<Spanned<RawHostKeyChecking>>,
    connect_timeout: Option<Spanned<u64>>,
    command_timeout: Option<Spanned<u64>>,
    control_persist: Option<Spanned<u64>>,
    #[serde(rename = "become")]
    become_root: Option<bool>,
}

/// `true`, `false` (read as `accept-new`, with a warning) or `"accept-new"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawHostKeyChecking {
    Flag(bool),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum RawSecret {
    Env(String),
    File(String),
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawConnection {
    Ssh,
    Local,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    address: Option<Spanned<String>>,
    private_ip: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    identity_file: Option<String>,
    #[serde(rename = "become")]
    become_root: Option<bool>,
    connection: Option<RawConnection>,
    #[serde(default)]
    vars: Vars,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
    #[serde(default)]
    children: Vec<Spanned<String>>,
    #[serde(default)]
    vars: Vars,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    vars: Vars,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<RawSecret>>,
    #[serde(default)]
    backups: Option<Spanned<super::backups::RawBackups>>,
    hosts: BTreeMap<String, Spanned<RawHost>>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<RawGroup>>,
    /// A role (a group name the playbook targets) read from another group: `web: frontends`.
    #[serde(default)]
    roles: BTreeMap<String, Spanned<String>>,
}

pub(crate) fn read(path: &Path) -> Result<String, InventoryError> {
    std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        hint: match source.kind() {
            std::io::ErrorKind::NotFound => {
                "check the path, or pass the right file with -i/--inventory or -p/--playbook".into()
            }
            _ => "check the file's permissions".into(),
        },
        source,
    })
}

/// Load and validate an inventory file.
pub fn load_inventory(path: &Path) -> Result<Inventory, InventoryError> {
    let text = read(path)?;
    let raw: RawInventory = parse(path, &text)?;
    let at = |l: &serde_saphyr::Location| location_of(path, l);

    // OpenSSH's `StrictHostKeyChecking=no` would accept a changed host key (a man in the
    // middle then receives file bodies and SQL): foobar never asks for it. `false` means
    // `accept-new`, which trusts a host on first contact only, and says so.
    let mut warnings = Vec::new();
    let strict_host_key_checking = match &raw.ssh.strict_host_key_checking {
        None => true,
        Some(s) => match &s.value {
            RawHostKeyChecking::Flag(true) => true,
            RawHostKeyChecking::Word(w) if w == "yes" => true,
            RawHostKeyChecking::Word(w) if w == "accept-new" => false,
            RawHostKeyChecking::Flag(false) => {
                warnings.push(format!(
                    "warning: {}: `strict_host_key_checking: false` is read as `accept-new`: a host never seen before is trusted on first contact and its key recorded; a changed key is always refused. Write `strict_host_key_checking: accept-new` to say so.",
                    at(&s.referenced)
                ));
                false
            }
            RawHostKeyChecking::Word(other) => {
                return Err(InventoryError::Yaml {
                    location: at(&s.referenced),
                    message: format!(
                        "strict_host_key_checking must be true or \"accept-new\", not {other:?}"
                    ),
                    key_path: "ssh.strict_host_key_checking".into(),
                    hint: Some(
                        "true checks every host against known_hosts; \"accept-new\" also trusts a host never seen before, once"
                            .into(),
                    ),
                });
            }
        },
    };

    let user = raw
        .ssh
        .user
        .map(|u| checked(path, "user", u, rules::check_ssh_user, user_hint))
        .transpose()?;
    let ssh = SshDefaults {
        login: Login {
            user,
            port: raw.ssh.port.map(|p| port(path, p)).transpose()?,
            identity_file: raw.ssh.identity_file.map(|p| relative_to(path, &p)),
            become_root: raw.ssh.become_root,
        },
        ssh_config: raw.ssh.ssh_config.map(|p| relative_to(path, &p)),
        known_hosts_file: raw.ssh.known_hosts_file.map(|p| relative_to(path, &p)),
        strict_host_key_checking,
        connect_timeout: seconds(
            path,
            "connect_timeout",
            raw.ssh.connect_timeout,
            10,
            1..=3600,
        )?,
        command_timeout: seconds(
            path,
            "command_timeout",
            raw.ssh.command_timeout,
            600,
            1..=7 * 24 * 3600,
        )?,
        control_persist: seconds(
            path,
            "control_persist",
            raw.ssh.control_persist,
            60,
            0..=86400,
        )?,
    };

    if !strict_host_key_checking
        && let Some(s) = &raw.ssh.strict_host_key_checking
        && let Some(w) = keys_never_kept(&ssh, &at(&s.referenced))
    {
        warnings.push(w);
    }

    let secrets = raw
        .secrets
        .into_iter()
        .map(|(name, s)| {
            let source = match s.value {
                RawSecret::Env(v) => SecretSource::Env(v),
                RawSecret::File(p) => SecretSource::File(relative_to(path, &p)),
            };
            let r = SecretRef {
                name: name.clone(),
                source,
                location: at(&s.referenced),
            };
            (name, r)
        })
        .collect();

    // Problems that do not stop the others from being checked: reported together.
    let mut problems: Vec<InventoryError> = Vec::new();
    let mut hosts = BTreeMap::new();
    let mut private_ips: BTreeMap<String, HostName> = BTreeMap::new();
    for (name, h) in raw.hosts {
        let location = at(&h.referenced);
        check_name(&key_of(&text, &location), "host", &name)?;
        let name = HostName::new(name);
        let local = h.value.connection == Some(RawConnection::Local);
        if h.value.address.is_none() && ssh.ssh_config.is_none() && !local {
            return Err(InventoryError::NoAddress {
                location,
                host: name.0,
            });
        }
        if h.value.address.is_none()
            && !local
            && let Err(why) = rules::check_destination(name.as_str())
        {
            // ssh connects to the name itself (the ssh_config maps it).
            return Err(InventoryError::BadLogin {
                location,
                message: format!("host name `{name}` {why}"),
                hint: "ssh connects to this name (no `address:`): set `address:`, or name the host as a hostname its ssh_config `Host` entry matches (letters, digits, `-`, `_` and `.`)".into(),
            });
        }
        if let Some(ip) = &h.value.private_ip {
            match private_ips.get(&ip.value) {
                Some(first) => problems.push(InventoryError::Duplicate {
                    location: at(&ip.referenced),
                    what: "private_ip",
                    value: ip.value.clone(),
                    first: first.0.clone(),
                    second: name.0.clone(),
                }),
                None => {
                    private_ips.insert(ip.value.clone(), name.clone());
                }
            }
        }
        let r = h.value;
        let address = r
            .address
            .map(|a| checked(path, "address", a, rules::check_destination, address_hint))
            .transpose()?;
        let user = r
            .user
            .map(|u| checked(path, "user", u, rules::check_ssh_user, user_hint))
            .transpose()?;
        hosts.insert(
            name.clone(),
            Host {
                name,
                address,
                private_ip: r.private_ip.map(|s| s.value),
                login: Login {
                    user,
                    port: r.port.map(|p| port(path, p)).transpose()?,
                    identity_file: r.identity_file.map(|p| relative_to(path, &p)),
                    become_root: r.become_root,
                },
                local,
                vars: r.vars,
                location,
            },
        );
    }

    let mut groups = match resolve_groups(path, &text, &hosts, raw.groups, &mut warnings) {
        Ok(g) => g,
        Err(e) => {
            problems.push(e);
            return Err(InventoryError::collect(problems).expect("one at least"));
        }
    };
    let roles = map_roles(path, &mut groups, raw.roles, &mut problems);
    let topology = Topology::resolve(&groups);
    let mut inventory = Inventory {
        path: path.to_path_buf(),
        ssh,
        vars: raw.vars,
        secrets,
        hosts,
        groups,
        warnings,
        topology,
        backups: None,
        schema: None,
        roles,
    };
    super::var_files::load_var_files(&mut inventory)?;
    problems.extend(check_database_topology(&inventory, &text));
    if let Some(e) = InventoryError::collect(problems) {
        return Err(e);
    }
    let backups_location = raw.backups.as_ref().map(|b| at(&b.referenced));
    if let Some(b) = raw.backups {
        inventory.backups = Some(super::backups::resolve(path, &inventory, b)?);
    }
    super::backups::add_groups(&mut inventory, backups_location)?;
    // The backups section adds its groups: resolve the roles again over the final groups.
    inventory.topology = Topology::resolve(&inventory.groups);
    Ok(inventory)
}

/// A host's or group's name, as [`rules::check_host_name`] has it; else the error at its entry.
fn check_name(
    location: &crate::error::Location,
    what: &str,
    name: &str,
) -> Result<(), InventoryError> {
    rules::check_host_name(name).map_err(|why| InventoryError::BadName {
        location: location.clone(),
        message: format!("{what} name `{}` {why}", name.escape_debug()),
        hint: format!(
            "a {what}'s name is a word such as `web-01` or `db_replica` (it names files and directories, e.g. under `render --out`); a host's address goes in `address:`"
        ),
    })
}

/// `value` when it keeps `rule`, else the error at its line.
fn checked(
    path: &Path,
    what: &'static str,
    value: Spanned<String>,
    rule: fn(&str) -> Result<(), rules::RuleViolation>,
    hint: fn(&rules::RuleViolation) -> String,
) -> Result<String, InventoryError> {
    match rule(&value.value) {
        Ok(()) => Ok(value.value),
        Err(why) => Err(InventoryError::BadLogin {
            location: location_of(path, &value.referenced),
            message: format!("{what} `{}` {why}", value.value.escape_debug()),
            hint: hint(&why),
        }),
    }
}

/// A TCP port ssh can connect to: 1 to 65535 (the type refuses the rest).
fn port(path: &Path, p: Spanned<u16>) -> Result<u16, InventoryError> {
    if p.value == 0 {
        return Err(InventoryError::Yaml {
            location: location_of(path, &p.referenced),
            message: "port 0 is no port ssh can connect to".into(),
            key_path: "port".into(),
            hint: Some(format!("{PORT_WORDS} (ssh's default is 22)")),
        });
    }
    Ok(p.value)
}

/// A number of seconds under `ssh:` within `range` (a timeout of 2^64 s overflowed the
/// arithmetic of deadlines and panicked), `default` when unset.
fn seconds(
    path: &Path,
    what: &str,
    value: Option<Spanned<u64>>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, InventoryError> {
    let Some(v) = value else { return Ok(default) };
    if range.contains(&v.value) {
        return Ok(v.value);
    }
    Err(InventoryError::Yaml {
        location: location_of(path, &v.referenced),
        message: format!(
            "`{what}: {}` is out of range: {what} is {} to {} seconds",
            v.value,
            range.start(),
            range.end()
        ),
        key_path: format!("ssh.{what}"),
        hint: Some(format!(
            "write a number of seconds from {} to {} (the default is {default})",
            range.start(),
            range.end()
        )),
    })
}

/// What a port is, in the words of its errors.
const PORT_WORDS: &str = "a TCP port is a whole number from 1 to 65535";

fn address_hint(why: &rules::RuleViolation) -> String {
    use rules::RuleViolation::*;
    match why {
        Uri => "write the host alone in `address:` (e.g. `10.0.0.11`), the user in `user:` and the port in `port:`".into(),
        HoldsUser => "write the user in `user:` and the host alone in `address:`".into(),
        HoldsPort => "write the port in `port:` and the host alone in `address:` (an IPv6 address goes bare, without brackets)".into(),
        BadIpv4 => "write all four parts of an IPv4 address, e.g. `10.0.0.11`".into(),
        _ => "`address:` is a hostname (`db-01.example.com`) or an IP address (`10.0.0.11`, `2001:db8::11`); ssh options belong in the ssh_config file".into(),
    }
}

fn user_hint(_: &rules::RuleViolation) -> String {
    "write the account ssh logs in as, e.g. `deploy`; ssh options belong in the ssh_config file"
        .into()
}

/// `accept-new` that records no key: `UserKnownHostsFile /dev/null` (in the ssh_config, as
/// `vagrant ssh-config` writes it, or as `known_hosts_file:`) makes every host new on every
/// connection, so every key is accepted. The warning, if so.
fn keys_never_kept(ssh: &SshDefaults, at: &crate::error::Location) -> Option<String> {
    let dev_null = Path::new("/dev/null");
    let source = match (&ssh.known_hosts_file, &ssh.ssh_config) {
        // foobar passes its own on the command line: it wins over the ssh_config's.
        (Some(file), _) => {
            (file == dev_null).then(|| "`known_hosts_file: /dev/null`".to_string())?
        }
        (None, Some(config)) => {
            let line = null_known_hosts_line(&std::fs::read_to_string(config).ok()?)?;
            format!(
                "`UserKnownHostsFile /dev/null` ({}:{line})",
                config.display()
            )
        }
        (None, None) => return None,
    };
    Some(format!(
        "warning: {at}: `strict_host_key_checking: accept-new` with {source} keeps no host key: every host's key is trusted, every time, and a changed one (a man in the middle) is never noticed.\n\
hint: keep the keys: set `known_hosts_file: known_hosts` under `ssh:` (foobar passes it to ssh, over the ssh_config's), run once to record them, then set `strict_host_key_checking: true`"
    ))
}

/// The line (1-based) of the first `UserKnownHostsFile /dev/null` of an ssh_config text:
/// keywords are case-insensitive, `=` may separate the value, which may be quoted.
fn null_known_hosts_line(config: &str) -> Option<usize> {
    config
        .lines()
        .position(|l| {
            let l = l.trim();
            let (key, value) = match l.find(|c: char| c.is_whitespace() || c == '=') {
                Some(i) => (
                    &l[..i],
                    l[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
                ),
                None => return false,
            };
            let first = value
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('"');
            key.eq_ignore_ascii_case("UserKnownHostsFile") && first == "/dev/null"
        })
        .map(|i| i + 1)
}

/// [`load_inventory`], then the stack's contract beside `playbook` (if it has one): its
/// defaults, its optional groups, and every value checked against its type, all problems at
/// once.
pub fn load_stack_inventory(
    path: &Path,
    playbook: &Path,
) -> Result<Inventory, Vec<InventoryError>> {
    let mut inventory = load_inventory(path).map_err(|e| vec![e])?;
    if let Some(schema) = super::Schema::beside(playbook).map_err(|e| vec![e])? {
        super::schema::apply(&mut inventory, schema)?;
        inventory.topology = Topology::resolve(&inventory.groups);
    }
    Ok(inventory)
}

/// `roles:`: each role becomes a group of the mapped group's hosts (its vars stay on the
/// group they are written on), so plays, templates and the topology read roles by their
/// names whatever the inventory calls its groups.
fn map_roles(
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
const MAX_GROUP_DEPTH: usize = 64;

fn resolve_groups(
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

/// Groups `db_primary` and `db_replica` describe the database tier: one primary, replicas
/// only with a primary, unique `server_id`s. Every problem found, not only the first.
fn check_database_topology(inv: &Inventory, text: &str) -> Vec<InventoryError> {
    let mut problems = Vec::new();
    // Where a host's `server_id:` is written in its block, else the host.
    let server_id_at = |host: &HostName| {
        let h = &inv.hosts[host];
        key_in_block(text, &h.location, "server_id").unwrap_or_else(|| h.location.clone())
    };
    let primaries = inv.groups.get(DATABASE_PRIMARY).map(|g| g.hosts.clone());
    let replicas = inv.groups.get(DATABASE_REPLICAS).map(|g| g.hosts.clone());
    if let Some(p) = &primaries
        && p.len() > 1
    {
        problems.push(InventoryError::Topology {
            location: inv.groups[DATABASE_PRIMARY].location.clone(),
            message: format!(
                "group db_primary has {} hosts ({}); replication has exactly one primary",
                p.len(),
                p.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", ")
            ),
            hint: "keep one host in db_primary and move the others to db_replica".into(),
        });
    }
    if let Some(p) = &primaries
        && p.is_empty()
        && replicas.as_ref().is_none_or(|r| r.is_empty())
    {
        problems.push(InventoryError::Topology {
            location: inv.groups[DATABASE_PRIMARY].location.clone(),
            message: "group db_primary (the database primary) has no host".into(),
            hint: "put the primary's host in it (`db_primary: { hosts: [web-01] }`), or remove the group and the database plays".into(),
        });
    }
    if let Some(r) = &replicas
        && !r.is_empty()
        && primaries.as_ref().is_none_or(|p| p.is_empty())
    {
        problems.push(InventoryError::Topology {
            location: inv.groups[DATABASE_REPLICAS].location.clone(),
            message: format!(
                "db_replica has {} but there is no primary to follow",
                r.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", ")
            ),
            hint: "add the primary's host to a group named db_primary".into(),
        });
    }
    if let (Some(p), Some(r)) = (&primaries, &replicas)
        && let Some(both) = p.iter().find(|h| r.contains(h))
    {
        problems.push(InventoryError::Topology {
            location: inv.groups[DATABASE_REPLICAS].location.clone(),
            message: format!("{both} is in both db_primary and db_replica"),
            hint: "a database host is either the primary or a replica".into(),
        });
    }
    let mut seen: BTreeMap<String, HostName> = BTreeMap::new();
    let db_hosts: BTreeSet<HostName> = primaries.into_iter().chain(replicas).flatten().collect();
    for host in db_hosts {
        let vars = inv.host_vars(&host);
        let Some(id) = vars.get("server_id") else {
            problems.push(InventoryError::Topology {
                location: inv.hosts[&host].location.clone(),
                message: format!("database host {host} has no server_id"),
                hint: format!("set `server_id:` (a unique positive number) under {host}'s vars"),
            });
            continue;
        };
        let Some(id) = id
            .as_u64()
            .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| *n >= 1 && *n <= u32::MAX as u64)
        else {
            problems.push(InventoryError::Topology {
                location: server_id_at(&host),
                message: format!("server_id of {host} is {id}, not a positive number"),
                hint: "server_id is a whole number from 1 to 4294967295, unique per database host"
                    .into(),
            });
            continue;
        };
        let id = id.to_string();
        if let Some(first) = seen.get(&id) {
            problems.push(InventoryError::Duplicate {
                location: server_id_at(&host),
                what: "server_id",
                value: id,
                first: first.0.clone(),
                second: host.0.clone(),
            });
            continue;
        }
        seen.insert(id, host);
    }
    problems
}
