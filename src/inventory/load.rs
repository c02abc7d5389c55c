//! The inventory file's YAML shape and its validation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::rules;
use super::topology::{DATABASE_PRIMARY, DATABASE_REPLICAS, Topology};
use super::yaml::{key_in_block, key_of, location_of, parse};
use super::{
    Host, HostName, Inventory, InventoryError, Login, SecretRef, SecretSource, SshDefaults, Vars,
    relative_to,
};

use super::load_checks::*;
use super::load_groups::{map_roles, resolve_groups};

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
pub(super) struct RawGroup {
    #[serde(default)]
    pub(super) hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) children: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) vars: Vars,
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
