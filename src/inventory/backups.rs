//! The inventory's `backups:` section: which host takes physical backups and archives the
//! primary's binary logs, where they go, how often, and how long they are kept.
//!
//! In: the raw YAML (with positions) and the otherwise loaded inventory. Out: a [`Backups`]
//! whose every value is usable as is: the host runs a database server, the directory is an
//! absolute path of plain characters, durations are parsed, the archive's secret is declared.
//! Each problem is one [`InventoryError`] naming file:line:column and what to write instead.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::yaml::location_of;
use super::{HostName, Inventory, InventoryError};
use crate::error::{Location, did_you_mean};

/// The secret holding the binlog archive account's password.
pub const ARCHIVE_PASSWORD_SECRET: &str = "binlog_archive_password";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackups {
    host: Option<Spanned<String>>,
    dir: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    #[serde(default)]
    retention: Option<Spanned<RawRetention>>,
    #[serde(default)]
    archive: Option<Spanned<RawArchive>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    count: Option<Spanned<u32>>,
    age: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArchive {
    user: Option<Spanned<String>>,
    host_pattern: Option<Spanned<String>>,
    max_lag: Option<Spanned<String>>,
}

/// Backups as the inventory declares them, validated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backups {
    /// Takes the backups and runs the binlog archive (default: the first replica).
    pub host: HostName,
    /// Absolute directory on `host`: `backups/<id>/` and `binlogs/` live under it.
    pub dir: String,
    /// systemd `OnCalendar=` expression.
    pub schedule: String,
    /// `verify` fails when the newest good backup is older than this.
    #[serde(with = "seconds")]
    pub max_age: Duration,
    /// Good backups kept at least (the newest `count`).
    pub retention_count: u32,
    /// Good backups older than this and not among the newest `count` are removed.
    #[serde(with = "seconds")]
    pub retention_age: Duration,
    /// The replication-client account the archive connects to the primary as.
    pub archive_user: String,
    pub archive_host_pattern: String,
    /// `verify` fails when the archive is further behind the primary than this.
    #[serde(with = "seconds")]
    pub archive_max_lag: Duration,
    #[serde(skip)]
    pub location: Location,
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

/// Schedules by name: (OnCalendar expression, the age `verify` allows by default).
const NAMED: &[(&str, &str, u64)] = &[
    ("hourly", "hourly", 2 * 3600),
    ("daily", "daily", 26 * 3600),
    ("weekly", "weekly", 8 * 86400),
];

fn plain_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() > 1
        && !p.contains("//")
        && !p.split('/').any(|c| c == "." || c == "..")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
}

fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

pub(super) fn resolve(
    path: &Path,
    inv: &Inventory,
    raw: Spanned<RawBackups>,
) -> Result<Backups, InventoryError> {
    let at = |l: &serde_saphyr::Location| location_of(path, l);
    let section = at(&raw.referenced);
    let raw = raw.value;
    let err = |location: Location, message: String, hint: String| InventoryError::Yaml {
        location,
        message,
        key_path: String::new(),
        hint: Some(hint),
    };
    let database_hosts: Vec<&HostName> = ["db_replica", "db_primary"]
        .iter()
        .filter_map(|g| inv.groups.get(*g))
        .flat_map(|g| g.hosts.iter())
        .collect();

    let host = match &raw.host {
        Some(h) => {
            let name = HostName::new(h.value.clone());
            if !inv.hosts.contains_key(&name) {
                let hint = match did_you_mean(&h.value, inv.hosts.keys().map(|k| k.as_str())) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "name a host declared under `hosts:`".into(),
                };
                return Err(err(
                    at(&h.referenced),
                    format!("backups.host `{}` is not a host of the inventory", h.value),
                    hint,
                ));
            }
            if !database_hosts.contains(&&name) {
                return Err(err(
                    at(&h.referenced),
                    format!(
                        "backups.host `{name}` runs no database server; physical backups are taken from a server's own data directory"
                    ),
                    "name a host in db_replica (preferred: the primary carries no backup load) or db_primary".into(),
                ));
            }
            name
        }
        None => match database_hosts.first() {
            Some(h) => (*h).clone(),
            None => {
                return Err(err(
                    section,
                    "backups: is set but the inventory has no database host to back up".into(),
                    "add the database hosts to groups db_primary/db_replica, or remove `backups:`"
                        .into(),
                ));
            }
        },
    };

    let dir = match &raw.dir {
        Some(d) if plain_path(&d.value) => {
            let dir = d.value.trim_end_matches('/').to_string();
            let inside = |p: &str| dir == p || dir.starts_with(&format!("{p}/"));
            let taken = [
                "/var/lib/mysql",
                "/var/backups/foobar",
                "/etc",
                "/usr",
                "/run",
                "/proc",
            ]
            .into_iter()
            .find(|p| inside(p))
            .or([
                "/",
                "/var",
                "/var/backups",
                "/var/lib",
                "/srv",
                "/opt",
                "/tmp",
                "/home",
            ]
            .into_iter()
            .find(|p| dir == *p));
            if let Some(p) = taken {
                return Err(err(
                    at(&d.referenced),
                    format!("backups.dir `{}` is (inside) {p}, which is not foobar's to fill or prune", d.value),
                    "use a directory of its own, e.g. /var/backups/foobar-database (retention deletes in it)".into(),
                ));
            }
            dir
        }
        Some(d) => {
            return Err(err(
                at(&d.referenced),
                format!("backups.dir `{}` is not a plain absolute path", d.value),
                "use an absolute path of letters, digits, `/`, `_`, `-` and `.`, e.g. /var/backups/foobar-database".into(),
            ));
        }
        None => "/var/backups/foobar-database".into(),
    };

    let duration = |s: &Spanned<String>, key: &str| -> Result<Duration, InventoryError> {
        humantime::parse_duration(s.value.trim()).map_err(|e| {
            err(
                at(&s.referenced),
                format!("backups.{key} `{}` is not a duration: {e}", s.value),
                "write a number and a unit, e.g. 90s, 30m, 26h, 14d".into(),
            )
        })
    };

    let (schedule, default_age) = match &raw.schedule {
        None => ("daily".to_string(), Some(26 * 3600)),
        Some(s) => {
            let v = s.value.trim();
            if let Some((_, cal, age)) = NAMED.iter().find(|(n, _, _)| *n == v) {
                (cal.to_string(), Some(*age))
            } else if !v.is_empty()
                && v.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, ' ' | '*' | ':' | ',' | '.' | '/' | '~' | '-')
                })
            {
                (v.to_string(), None)
            } else {
                return Err(err(
                    at(&s.referenced),
                    format!("backups.schedule `{}` is not a calendar expression", s.value),
                    "use hourly, daily, weekly or a systemd OnCalendar= expression such as `*-*-* 03:00:00` (check it with `systemd-analyze calendar`)".into(),
                ));
            }
        }
    };
    let max_age = match (&raw.max_age, default_age) {
        (Some(a), _) => duration(a, "max_age")?,
        (None, Some(secs)) => Duration::from_secs(secs),
        (None, None) => {
            let s = raw.schedule.as_ref().expect("custom schedule is set");
            return Err(err(
                at(&s.referenced),
                format!(
                    "backups.schedule `{}` needs `max_age:` beside it: how old the newest backup may get before `verify` fails",
                    s.value
                ),
                "add e.g. `max_age: 26h` for a daily schedule".into(),
            ));
        }
    };

    let (retention_count, retention_age) = match &raw.retention {
        None => (7, Duration::from_secs(14 * 86400)),
        Some(r) => {
            let count = match &r.value.count {
                Some(c) if c.value == 0 => {
                    return Err(err(
                        at(&c.referenced),
                        "backups.retention.count is 0: every backup would be removed".into(),
                        "keep at least 1 (the newest good backup is never removed)".into(),
                    ));
                }
                Some(c) => c.value,
                None => 7,
            };
            let age = match &r.value.age {
                Some(a) => duration(a, "retention.age")?,
                None => Duration::from_secs(14 * 86400),
            };
            (count, age)
        }
    };

    let archive = raw.archive.as_ref().map(|a| &a.value);
    let archive_user = match archive.and_then(|a| a.user.as_ref()) {
        Some(u) if plain_name(&u.value) => u.value.clone(),
        Some(u) => {
            return Err(err(
                at(&u.referenced),
                format!(
                    "backups.archive.user `{}` is not a plain account name",
                    u.value
                ),
                "use up to 32 letters, digits, `_` or `-`".into(),
            ));
        }
        None => "binlog_archive".into(),
    };
    let archive_host_pattern = match archive.and_then(|a| a.host_pattern.as_ref()) {
        Some(p)
            if !p.value.is_empty()
                && p.value.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '%' | '_' | '-' | ':')
                }) =>
        {
            p.value.clone()
        }
        Some(p) => {
            return Err(err(
                at(&p.referenced),
                format!(
                    "backups.archive.host_pattern `{}` is not a host pattern",
                    p.value
                ),
                "use an address or a MySQL host pattern such as `10.0.0.%`".into(),
            ));
        }
        None => match inv.hosts[&host].private_ip.clone() {
            Some(ip) => ip,
            None => {
                return Err(err(
                    section,
                    format!("backups: the archive account needs the address {host} connects from"),
                    format!(
                        "set `private_ip:` for {host}, or `archive: {{ host_pattern: ... }}` under backups:"
                    ),
                ));
            }
        },
    };
    let archive_max_lag = match archive.and_then(|a| a.max_lag.as_ref()) {
        Some(l) => duration(l, "archive.max_lag")?,
        None => Duration::from_secs(60),
    };

    if !inv.secrets.contains_key(ARCHIVE_PASSWORD_SECRET) {
        return Err(err(
            section,
            format!(
                "backups: the binlog archive account needs the secret `{ARCHIVE_PASSWORD_SECRET}`"
            ),
            format!(
                "add `{ARCHIVE_PASSWORD_SECRET}: {{ env: FOOBAR_BINLOG_ARCHIVE_PASSWORD }}` under `secrets:`"
            ),
        ));
    }

    Ok(Backups {
        host,
        dir,
        schedule,
        max_age,
        retention_count,
        retention_age,
        archive_user,
        archive_host_pattern,
        archive_max_lag,
        location: section,
    })
}

/// The groups plays target for backups: `backup_host` (the host that takes them) and
/// `backup_source` (the primary, where the archive account lives). Both exist, empty when the
/// inventory has no `backups:`, so the playbook loads either way.
pub(super) fn add_groups(
    inv: &mut Inventory,
    section: Option<Location>,
) -> Result<(), InventoryError> {
    let location = section.unwrap_or_else(|| Location::file_only(&inv.path));
    let primary = inv
        .groups
        .get("db_primary")
        .and_then(|g| g.hosts.first())
        .cloned();
    let wanted = [
        (
            BACKUP_HOST_GROUP,
            inv.backups.as_ref().map(|b| b.host.clone()),
        ),
        (BACKUP_SOURCE_GROUP, inv.backups.as_ref().and(primary)),
    ];
    for (name, host) in wanted {
        if let Some(g) = inv.groups.get(name) {
            return Err(InventoryError::Topology {
                location: g.location.clone(),
                message: format!("group `{name}` is reserved: foobar makes it from `backups:`"),
                hint: "rename the group; set the backup host with `backups: { host: ... }`".into(),
            });
        }
        inv.groups.insert(
            name.to_string(),
            super::Group {
                name: name.to_string(),
                hosts: host.into_iter().collect(),
                children: vec![],
                vars: Default::default(),
                depth: 0,
                location: location.clone(),
            },
        );
    }
    Ok(())
}

/// The group foobar makes for the host that takes backups.
pub const BACKUP_HOST_GROUP: &str = "backup_host";
/// The group foobar makes for the primary whose binary logs are archived.
pub const BACKUP_SOURCE_GROUP: &str = "backup_source";

#[cfg(test)]
mod tests {
    use super::*;

    fn load(backups: &str) -> Result<Inventory, InventoryError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.yml");
        let text = format!(
            "secrets:\n  binlog_archive_password: {{ env: X }}\nhosts:\n  db-1: {{ address: 10.0.0.1, private_ip: 10.0.0.1, vars: {{ server_id: 1 }} }}\n  db-2: {{ address: 10.0.0.2, private_ip: 10.0.0.2, vars: {{ server_id: 2 }} }}\n  lb: {{ address: 10.0.0.3 }}\ngroups:\n  db_primary: {{ hosts: [db-1] }}\n  db_replica: {{ hosts: [db-2] }}\n{backups}"
        );
        std::fs::write(&path, text).unwrap();
        super::super::load_inventory(&path)
    }

    fn error(backups: &str) -> (String, u32, String) {
        let e = load(backups).expect_err("must be rejected");
        let loc = crate::error::Diagnostic::location(&e).expect("a location");
        (
            e.to_string(),
            loc.line,
            crate::error::Diagnostic::hint(&e).unwrap_or_default(),
        )
    }

    #[test]
    fn defaults_pick_the_replica_and_a_daily_schedule() {
        let inv = load("backups: {}\n").unwrap();
        let b = inv.backups.unwrap();
        assert_eq!(b.host.as_str(), "db-2");
        assert_eq!(b.dir, "/var/backups/foobar-database");
        assert_eq!(b.schedule, "daily");
        assert_eq!(b.max_age, Duration::from_secs(26 * 3600));
        assert_eq!(b.retention_count, 7);
        assert_eq!(b.archive_user, "binlog_archive");
        assert_eq!(b.archive_host_pattern, "10.0.0.2");
    }

    #[test]
    fn no_section_no_backups() {
        assert!(load("").unwrap().backups.is_none());
    }

    #[test]
    fn full_section() {
        let inv = load(
            "backups:\n  host: db-1\n  dir: /srv/backup/\n  schedule: \"*-*-* 03:00:00\"\n  max_age: 25h\n  retention: { count: 3, age: 2d }\n  archive: { user: arch, host_pattern: \"10.0.0.%\", max_lag: 30s }\n",
        )
        .unwrap();
        let b = inv.backups.unwrap();
        assert_eq!(b.host.as_str(), "db-1");
        assert_eq!(b.dir, "/srv/backup");
        assert_eq!(b.schedule, "*-*-* 03:00:00");
        assert_eq!(b.retention_age, Duration::from_secs(2 * 86400));
        assert_eq!(b.archive_max_lag, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_name_their_line_and_a_fix() {
        let (m, line, hint) = error("backups:\n  host: db-3\n");
        assert!(m.contains("db-3"), "{m}");
        assert_eq!(line, 11);
        assert!(hint.contains("db-1") || hint.contains("db-2"), "{hint}");

        let (m, _, hint) = error("backups:\n  host: lb\n");
        assert!(m.contains("runs no database server"), "{m}");
        assert!(hint.contains("db_replica"), "{hint}");

        let (m, line, _) = error("backups:\n  dir: relative/dir\n");
        assert!(m.contains("not a plain absolute path"), "{m}");
        assert_eq!(line, 11);
        let (m, _, hint) = error("backups:\n  dir: /var/lib/mysql/backups\n");
        assert!(m.contains("is (inside) /var/lib/mysql"), "{m}");
        assert!(hint.contains("of its own"), "{hint}");
        let (m, _, _) = error("backups:\n  dir: /var/backups/foobar\n");
        assert!(m.contains("/var/backups/foobar"), "{m}");
        let (m, _, _) = error("backups:\n  dir: /\n");
        assert!(
            m.contains("not a plain absolute path") || m.contains("is (inside) /"),
            "{m}"
        );
        let (m, _, _) = error("backups:\n  dir: \"/x/$(reboot)\"\n");
        assert!(m.contains("not a plain absolute path"), "{m}");

        let (m, line, hint) = error("backups:\n  schedule: \"*-*-* 03:00\"\n");
        assert!(m.contains("needs `max_age:`"), "{m}");
        assert_eq!(line, 11);
        assert!(hint.contains("max_age"), "{hint}");
        let (m, _, _) = error("backups:\n  schedule: \"daily; rm -rf /\"\n");
        assert!(m.contains("not a calendar expression"), "{m}");

        let (m, line, _) = error("backups:\n  retention:\n    count: 0\n");
        assert!(m.contains("count is 0"), "{m}");
        assert_eq!(line, 12);
        let (m, _, hint) = error("backups:\n  retention: { age: forever }\n");
        assert!(m.contains("not a duration"), "{m}");
        assert!(hint.contains("14d"), "{hint}");

        let (m, _, hint) = error("backups:\n  retension: { count: 3 }\n");
        assert!(m.contains("unknown field"), "{m}");
        assert!(hint.contains("retention"), "{hint}");

        let (m, _, _) = error("backups:\n  archive: { user: \"a'b\" }\n");
        assert!(m.contains("plain account name"), "{m}");
    }

    #[test]
    fn the_archive_secret_must_be_declared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.yml");
        std::fs::write(
            &path,
            "hosts:\n  db-1: { address: 10.0.0.1, private_ip: 10.0.0.1, vars: { server_id: 1 } }\ngroups:\n  db_primary: { hosts: [db-1] }\nbackups: {}\n",
        )
        .unwrap();
        let e = super::super::load_inventory(&path).unwrap_err();
        assert!(e.to_string().contains(ARCHIVE_PASSWORD_SECRET), "{e}");
        assert!(
            crate::error::Diagnostic::hint(&e)
                .unwrap()
                .contains("secrets:")
        );
    }
}
