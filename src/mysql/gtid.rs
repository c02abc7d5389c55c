//! MariaDB GTID positions (`domain-server-sequence`, comma-separated, one per domain), compared
//! for failover: how far a replica is behind, and which of several is furthest ahead.
//!
//! Within a domain, sequence numbers only grow (`gtid_strict_mode`), so the distance between
//! two positions of the same history is the difference of their sequence numbers. Whether two
//! positions are of the *same* history (no errant transaction) is the server's call: a
//! primary running in strict mode refuses a replica whose position is not in its binary log
//! (error 1236), which foobar reports as needing `foobar reseed`.

use std::collections::BTreeMap;

/// One position: sequence number (and the server that wrote it) per replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPosition {
    pub domains: BTreeMap<u32, (u32, u64)>,
}

impl GtidPosition {
    /// Parse `0-1-100,1-2-5`; empty text is the empty position. `None` for anything else
    /// (MySQL's `uuid:1-5` sets included).
    pub fn parse(text: &str) -> Option<Self> {
        let mut domains = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut f = part.split('-');
            let (Some(d), Some(s), Some(n), None) = (f.next(), f.next(), f.next(), f.next()) else {
                return None;
            };
            domains.insert(d.parse().ok()?, (s.parse().ok()?, n.parse().ok()?));
        }
        Some(Self { domains })
    }

    /// How many transactions `other` holds beyond `self`, summed over the domains (0 when
    /// `self` is at or past `other` everywhere).
    pub fn behind(&self, other: &GtidPosition) -> u64 {
        other
            .domains
            .iter()
            .map(|(d, (_, seq))| {
                let mine = self.domains.get(d).map_or(0, |(_, s)| *s);
                seq.saturating_sub(mine)
            })
            .sum()
    }
}

impl std::fmt::Display for GtidPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .domains
            .iter()
            .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
            .collect();
        if parts.is_empty() {
            f.write_str("(empty)")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// The unplanned-failover rule: promoting `chosen` (its position) is safe from a data-loss
/// point of view unless another candidate holds more. Returns the candidates further ahead,
/// with how many transactions `chosen` lacks against each.
pub fn further_ahead<'a>(
    chosen: &GtidPosition,
    others: &'a [(String, GtidPosition)],
) -> Vec<(&'a str, u64)> {
    others
        .iter()
        .filter_map(|(name, pos)| {
            let lacks = chosen.behind(pos);
            (lacks > 0).then_some((name.as_str(), lacks))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> GtidPosition {
        GtidPosition::parse(s).unwrap()
    }

    #[test]
    fn parses_mariadb_positions_and_refuses_others() {
        assert_eq!(p("").domains.len(), 0);
        assert_eq!(p("0-1-100,1-2-5").domains[&1], (2, 5));
        assert_eq!(p("0-1-100").to_string(), "0-1-100");
        assert!(GtidPosition::parse("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5").is_none());
        assert!(GtidPosition::parse("0-1").is_none());
    }

    #[test]
    fn distance_counts_missing_transactions_per_domain() {
        assert_eq!(p("0-1-95").behind(&p("0-1-100")), 5);
        assert_eq!(p("0-1-100").behind(&p("0-1-95")), 0);
        assert_eq!(p("0-1-100").behind(&p("0-1-100,1-3-4")), 4);
        assert_eq!(p("").behind(&p("0-1-7")), 7);
    }

    #[test]
    fn a_replica_further_ahead_is_named() {
        let others = vec![
            ("web-03".to_string(), p("0-1-120")),
            ("web-04".to_string(), p("0-1-90")),
        ];
        assert_eq!(further_ahead(&p("0-1-100"), &others), vec![("web-03", 20)]);
        assert!(further_ahead(&p("0-1-120"), &others).is_empty());
    }
}
