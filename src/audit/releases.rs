//! A fleet that runs more than one OS release or database release series: a step of an
//! upgrade, reported so that it does not become the place the fleet stays.

use std::collections::BTreeMap;

use super::{Finding, Severity};
use crate::inventory::HostName;
use crate::mysql::ServerVersion;
use crate::remote::section::{self, Line, Section};

/// What `audit --live` read of one host's release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// `VERSION_CODENAME` of /etc/os-release, e.g. `bookworm`.
    pub codename: Option<String>,
    /// The database server's version, on database hosts.
    pub database: Option<ServerVersion>,
}

impl Release {
    /// From what [`super::live_script`] printed.
    pub fn parse(output: &str) -> Release {
        let mut r = Release::default();
        for line in section::lines(output) {
            match line {
                Line::Body(Some(Section::Os), l) => {
                    if let Some(v) = l.strip_prefix("VERSION_CODENAME=") {
                        let v = v.trim_matches('"').trim();
                        r.codename = (!v.is_empty()).then(|| v.to_string());
                    }
                }
                Line::Body(Some(Section::Database), l) => {
                    if let Some(v) = l.strip_prefix("version\t") {
                        r.database = ServerVersion::parse(v.trim()).ok();
                    }
                }
                _ => {}
            }
        }
        r
    }
}

/// One finding when the hosts run more than one OS release, or their database servers more
/// than one release series (`10.11` and `11.8`; patch levels may differ).
pub fn mixed_releases(hosts: &BTreeMap<HostName, Release>) -> Option<Finding> {
    let mut by_os: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_series: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, r) in hosts {
        if let Some(c) = &r.codename {
            by_os.entry(c).or_default().push(host.as_str());
        }
        if let Some(v) = &r.database {
            by_series
                .entry(format!("{} {}.{}", v.flavor, v.major, v.minor))
                .or_default()
                .push(format!("{host} ({v})"));
        }
    }
    if by_os.len() < 2 && by_series.len() < 2 {
        return None;
    }
    let mut parts = Vec::new();
    if by_os.len() > 1 {
        parts.push(
            by_os
                .iter()
                .map(|(os, h)| format!("{} on {os}", h.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    if by_series.len() > 1 {
        parts.push(format!(
            "database servers {}",
            by_series
                .values()
                .map(|h| h.join(", "))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Some(Finding {
        id: "mixed_releases",
        severity: Severity::Medium,
        location: "the fleet".into(),
        summary: format!("hosts run different releases: {}", parts.join("; ")),
        why: "a mixed fleet is a step of an upgrade, not a place to stay: an older database server cannot replicate from a newer one, so a failover to a newer server leaves the older ones out".into(),
        fix: "finish the move, replicas first, then the primary, then the load balancers: docs/operations/os-upgrade.md".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(os: &str, db: Option<&str>) -> Release {
        let mut out =
            format!("#foobar:os\nPRETTY_NAME=\"Debian GNU/Linux\"\nVERSION_CODENAME={os}\n");
        if let Some(v) = db {
            out.push_str(&format!("#foobar:database\nread_only\t0\nversion\t{v}\n"));
        }
        out.push_str("#foobar:end\n");
        Release::parse(&out)
    }

    #[test]
    fn one_release_everywhere_is_no_finding_patch_levels_aside() {
        let hosts = BTreeMap::from([
            (HostName::new("lb-01"), release("bookworm", None)),
            (
                HostName::new("web-01"),
                release("bookworm", Some("10.11.14-MariaDB-0+deb12u2-log")),
            ),
            (
                HostName::new("web-02"),
                release("bookworm", Some("10.11.6-MariaDB-0+deb12u1")),
            ),
        ]);
        assert_eq!(mixed_releases(&hosts), None);
    }

    #[test]
    fn a_fleet_mid_upgrade_is_one_finding_naming_each_host() {
        let hosts = BTreeMap::from([
            (HostName::new("lb-01"), release("bookworm", None)),
            (
                HostName::new("web-01"),
                release("bookworm", Some("10.11.14-MariaDB-0+deb12u2-log")),
            ),
            (
                HostName::new("web-02"),
                release("trixie", Some("11.8.3-MariaDB-deb13-log")),
            ),
        ]);
        let f = mixed_releases(&hosts).unwrap();
        assert_eq!(f.id, "mixed_releases");
        assert_eq!(
            f.summary,
            "hosts run different releases: lb-01, web-01 on bookworm; web-02 on trixie; \
             database servers web-01 (MariaDB 10.11.14); web-02 (MariaDB 11.8.3)"
        );
        assert!(f.fix.contains("docs/operations/os-upgrade.md"));
    }
}
