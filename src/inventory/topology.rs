//! Topology: which hosts play which part of the stack, resolved once at load from the groups
//! with well-known names. The group names are spelled here and in the load-time checks only;
//! every later stage asks the [`Topology`].

use std::collections::BTreeMap;

use super::Group;
use crate::host::HostName;

/// The group names foobar gives a meaning to.
pub const LOAD_BALANCERS: &str = "loadbalancer";
pub const WEB_SERVERS: &str = "web";
pub const DATABASE_PRIMARY: &str = "db_primary";
pub const DATABASE_REPLICAS: &str = "db_replica";
/// A parent group of the database hosts, as the shipped inventories write it.
pub const DATABASES: &str = "databases";
pub const MONITORING: &str = "monitoring";
/// The group `backups:` in the inventory puts its host in (see `inventory::backups`).
pub const BACKUPS: &str = super::backups::BACKUP_HOST_GROUP;
pub const FIREWALL: &str = "firewall";

/// The stack's parts, each in inventory order. A missing group is an empty part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub load_balancers: Vec<HostName>,
    pub web_servers: Vec<HostName>,
    /// At most one: load rejects a second (see `check_database_topology`).
    pub database_primary: Option<HostName>,
    pub database_replicas: Vec<HostName>,
    /// Hosts of group `databases` (which may name database hosts beyond primary and replicas).
    pub databases: Vec<HostName>,
    pub monitoring: Vec<HostName>,
    /// The host that takes the backups (group `backup_host`), if the inventory has `backups:`.
    pub backups: Option<HostName>,
    pub firewalled: Vec<HostName>,
}

impl Topology {
    pub fn resolve(groups: &BTreeMap<String, Group>) -> Self {
        let hosts = |name: &str| {
            groups
                .get(name)
                .map(|g| g.hosts.clone())
                .unwrap_or_default()
        };
        Self {
            load_balancers: hosts(LOAD_BALANCERS),
            web_servers: hosts(WEB_SERVERS),
            database_primary: hosts(DATABASE_PRIMARY).into_iter().next(),
            database_replicas: hosts(DATABASE_REPLICAS),
            databases: hosts(DATABASES),
            monitoring: hosts(MONITORING),
            backups: hosts(BACKUPS).into_iter().next(),
            firewalled: hosts(FIREWALL),
        }
    }

    /// When the inventory runs the stack and no host is in group `firewall`, the warning `plan`
    /// and `audit` give: without it, Prometheus, the exporters, the app port and MySQL answer
    /// the whole private network. An inventory without the stack's groups (the engine on its
    /// own) has nothing of that to protect, so it is not told.
    pub fn firewall_off_warning(&self) -> Option<String> {
        let runs_the_stack = !(self.load_balancers.is_empty()
            && self.web_servers.is_empty()
            && self.databases.is_empty()
            && self.database_primary.is_none()
            && self.monitoring.is_empty());
        (runs_the_stack && self.firewalled.is_empty()).then(|| {
            "no host is in group `firewall`: Prometheus, the exporters, the app port and the \
database answer anyone on the private network (and on any public address a host has)\n\
hint: put the hosts in group `firewall`, list the operators' networks in `admin_networks:` \
and run `foobar apply -p playbooks/firewall.yml`"
                .to_string()
        })
    }

    /// The load balancer foobar drains web servers on during a rolling apply: the first.
    pub fn load_balancer(&self) -> Option<&HostName> {
        self.load_balancers.first()
    }

    pub fn is_load_balancer(&self, host: &HostName) -> bool {
        self.load_balancers.contains(host)
    }

    pub fn is_primary(&self, host: &HostName) -> bool {
        self.database_primary.as_ref() == Some(host)
    }

    pub fn is_replica(&self, host: &HostName) -> bool {
        self.database_replicas.contains(host)
    }

    /// Primary, replica, or in group `databases`.
    pub fn is_database(&self, host: &HostName) -> bool {
        self.is_primary(host) || self.is_replica(host) || self.databases.contains(host)
    }

    pub fn is_firewalled(&self, host: &HostName) -> bool {
        self.firewalled.contains(host)
    }

    /// The primary (if any) then the replicas.
    pub fn database_servers(&self) -> Vec<HostName> {
        self.database_primary
            .iter()
            .chain(&self.database_replicas)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn names(list: &[&str]) -> Vec<HostName> {
        list.iter().map(|n| HostName::new(*n)).collect()
    }

    #[test]
    fn production_inventory_resolves_every_part() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/production.yml");
        let inv = crate::inventory::load_inventory(&path).expect("shipped inventory loads");
        let t = &inv.topology;
        assert_eq!(t.load_balancers, names(&["lb-01"]));
        assert_eq!(t.load_balancer(), Some(&HostName::new("lb-01")));
        assert_eq!(t.web_servers, names(&["web-01", "web-02"]));
        assert_eq!(t.database_primary, Some(HostName::new("web-01")));
        assert_eq!(t.database_replicas, names(&["web-02"]));
        assert_eq!(t.database_servers(), names(&["web-01", "web-02"]));
        assert_eq!(t.monitoring, names(&["lb-01"]));
        assert_eq!(t.backups, None);
        assert!(t.is_primary(&HostName::new("web-01")) && !t.is_replica(&HostName::new("web-01")));
        assert!(t.is_database(&HostName::new("web-02")));
        assert!(!t.is_database(&HostName::new("lb-01")));
    }

    #[test]
    fn no_firewalled_host_is_said() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/production.yml");
        let inv = crate::inventory::load_inventory(&path).expect("shipped inventory loads");
        let warning = inv
            .topology
            .firewall_off_warning()
            .expect("production has no firewall");
        assert!(
            warning.starts_with("no host is in group `firewall`"),
            "{warning}"
        );
        let mut t = inv.topology.clone();
        t.firewalled = names(&["web-01"]);
        assert_eq!(t.firewall_off_warning(), None);
        assert_eq!(
            Topology::default().firewall_off_warning(),
            None,
            "no stack, no warning"
        );
    }

    #[test]
    fn missing_groups_are_empty_parts() {
        assert_eq!(Topology::resolve(&BTreeMap::new()), Topology::default());
    }
}
