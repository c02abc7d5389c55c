//! What rendering produces: one [`DesiredState`] per host, its plays in playbook order, each
//! play's packages, paths ([`DesiredEntry`]), services and handlers, rendered and checked.
//! Plan, apply, verify and report read it; nothing here reads a host.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::inventory::{DatabaseRole, HandlerSpec, HostName, ServiceSpec};

/// What one path on a host should be.
#[derive(Debug, Clone)]
pub enum EntryKind {
    File {
        content: Arc<[u8]>,
        digest: String,
        mode: u32,
        owner: String,
        group: String,
        validate: Option<String>,
        /// The content holds a secret: never shown, backed up with mode 0600.
        sensitive: bool,
        /// The secrets its rendering read, by name (empty for a file marked `sensitive:
        /// true` that reads none).
        reads: Vec<String>,
    },
    Directory {
        mode: u32,
        owner: String,
        group: String,
    },
    Link {
        target: String,
    },
    Absent,
}

#[derive(Debug, Clone)]
pub struct DesiredEntry {
    pub path: String,
    pub kind: EntryKind,
    pub notify: Vec<String>,
    /// Where it came from, for messages: a template name or a synced source file.
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct DesiredPlay {
    pub index: usize,
    pub name: String,
    pub packages: Vec<String>,
    pub entries: Vec<DesiredEntry>,
    pub services: Vec<ServiceSpec>,
    pub handlers: Vec<HandlerSpec>,
    pub database: Option<DatabaseRole>,
    /// Hosts of the load balancer's backend changed this many at a time (`serial:`).
    pub serial: Option<u32>,
    /// Earlier plays that must finish on this host before this one starts there.
    pub after: BTreeSet<usize>,
}

/// Everything foobar wants on one host, in play order.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub host: HostName,
    pub plays: Vec<DesiredPlay>,
}

/// A host's firewall, as its desired state manages it: the handler that loads the ruleset
/// with foobar-firewall-load (`run: /usr/local/sbin/foobar-firewall-load RULESET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall<'a> {
    pub play: usize,
    pub handler: &'a str,
    /// The ruleset file the handler loads.
    pub ruleset: &'a str,
    /// SHA-256 of that file's desired body, when the desired state writes it.
    pub digest: Option<&'a str>,
}

impl DesiredState {
    pub fn entries(&self) -> impl Iterator<Item = &DesiredEntry> {
        self.plays.iter().flat_map(|p| p.entries.iter())
    }

    /// The host's firewall, when a handler of its plays loads one.
    pub fn firewall(&self) -> Option<Firewall<'_>> {
        let loader = crate::remote::layout::FIREWALL_LOADER;
        self.plays.iter().find_map(|p| {
            p.handlers.iter().find_map(|h| {
                let ruleset = h.run.as_deref()?.strip_prefix(loader)?.strip_prefix(' ')?;
                let ruleset = ruleset.trim();
                let digest =
                    p.entries
                        .iter()
                        .find(|e| e.path == ruleset)
                        .and_then(|e| match &e.kind {
                            EntryKind::File { digest, .. } => Some(digest.as_str()),
                            _ => None,
                        });
                Some(Firewall {
                    play: p.index,
                    handler: h.name.as_str(),
                    ruleset,
                    digest,
                })
            })
        })
    }
    pub fn packages(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .plays
            .iter()
            .flat_map(|p| p.packages.iter().map(String::as_str))
            .collect();
        v.sort();
        v.dedup();
        v
    }
    pub fn services(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .plays
            .iter()
            .flat_map(|p| p.services.iter().map(|s| s.name.as_str()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}
