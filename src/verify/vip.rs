//! The floating address of a load balancer pair (`vip:`, held by keepalived): exactly one
//! holder, keepalived running on every load balancer and in agreement with who holds the
//! address (MASTER there, BACKUP elsewhere), HAProxy answering on every one, and HTTP through
//! the floating address reaching every web host.
//!
//! In: the inventory's `vip:` and one probe per load balancer, run over its transport
//! ([`probe_script`]): the HTTP requests start on the load balancers, inside the network the
//! address lives on, not from foobar's machine (which need not reach it). Out: checks per
//! load balancer ([`evaluate`] is pure).

use std::collections::BTreeMap;

use crate::inventory::{HostName, Inventory};
use crate::mysql::Check;
use crate::shell::Script;

/// `vip:` as the checks need it.
#[derive(Debug, Clone, PartialEq)]
pub struct VipConfig {
    pub address: String,
    pub interface: String,
    /// `address:port` of HAProxy's frontend on it.
    pub frontend: String,
    pub domain: String,
    pub socket: String,
}

/// The `vip:` of the load balancers (read from the first one's variables), if any.
pub fn config(inv: &Inventory) -> Option<VipConfig> {
    let lb = inv.topology.load_balancers.first()?;
    let vars = inv.host_vars(lb);
    let vip = vars.get("vip")?;
    let text = |v: Option<&serde_json::Value>| {
        v.map(|v| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        })
    };
    let address = text(vip.get("address"))?;
    let port = text(vars.get("haproxy_bind"))
        .and_then(|b| b.rsplit_once(':').map(|(_, p)| p.to_string()))
        .unwrap_or_else(|| "80".into());
    Some(VipConfig {
        frontend: format!("{address}:{port}"),
        address,
        interface: text(vip.get("interface")).unwrap_or_else(|| "eth0".into()),
        domain: text(vars.get("domain")).unwrap_or_else(|| "localhost".into()),
        socket: text(vars.get("haproxy_admin_socket"))
            .unwrap_or_else(|| "/run/haproxy/admin.sock".into()),
    })
}

/// The probe a load balancer runs: `tries` GETs through the address from there.
pub fn probe_script(cfg: &VipConfig, tries: usize) -> Script {
    let mut s = Script::new();
    s.code("export LC_ALL=C\n")
        .code(include_str!("../remote/sh/http_get.sh"))
        .code(include_str!("vip.sh"))
        .code("vip_probe ")
        .words([
            cfg.interface.as_str(),
            cfg.address.as_str(),
            cfg.socket.as_str(),
            cfg.frontend.as_str(),
            cfg.domain.as_str(),
        ])
        .code(" ")
        .int(tries as u64)
        .code("\n");
    s
}

/// What one load balancer's probe saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    pub holds: bool,
    pub keepalived: bool,
    pub state: String,
    pub haproxy: bool,
    /// Status and body of each GET through the address.
    pub answers: Vec<String>,
}

pub fn parse(text: &str) -> Probe {
    let mut p = Probe::default();
    let mut section = "";
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("#vip:") {
            section = if s == "end" { "" } else { s };
            continue;
        }
        match section {
            "holds" => p.holds = line.trim() == "yes",
            "keepalived" => p.keepalived = line.trim() == "running",
            "state" => p.state = line.trim().to_string(),
            "haproxy" => p.haproxy = line.trim() == "answering",
            "http" => p.answers.push(line.to_string()),
            _ => {}
        }
    }
    p
}

#[derive(Debug, thiserror::Error)]
pub enum VipFailure {
    #[error("{address} is held by {} at once", holders.join(" and "))]
    TwoHolders {
        address: String,
        holders: Vec<String>,
    },
    #[error("no load balancer holds {address}")]
    NoHolder { address: String },
    #[error("keepalived is not running")]
    KeepalivedStopped,
    #[error("keepalived is {state} but {}", if *holds { "this host holds the address" } else { "this host does not hold the address" })]
    Disagrees { state: String, holds: bool },
    #[error("HAProxy does not answer on its runtime API {socket}")]
    HaproxySilent { socket: String },
    #[error("GET http://{domain}/ via {frontend} from {from} never answered 200 ({first})")]
    NoAnswer {
        domain: String,
        frontend: String,
        from: HostName,
        first: String,
    },
    #[error("GET http://{domain}/ via {frontend} never reached {web} ({first})")]
    NeverReached {
        domain: String,
        frontend: String,
        web: HostName,
        first: String,
    },
}

impl VipFailure {
    pub fn hint(&self) -> String {
        match self {
            VipFailure::TwoHolders { .. } => "split brain: the VRRP adverts between the load balancers do not arrive (a firewall dropping IP protocol 112, a different `router_id` or password); fix the path, then the lower-priority holder gives the address up by itself".into(),
            VipFailure::NoHolder { .. } => "keepalived is down or in FAULT on every load balancer (its track script gives the address up when HAProxy does not serve): see the other checks".into(),
            VipFailure::KeepalivedStopped => "`foobar apply` starts it; `journalctl -u keepalived` (or its log) says why it stopped".into(),
            VipFailure::Disagrees { .. } => "keepalived's view changes within a few adverts; run verify again, and if it stays, restart keepalived on this host".into(),
            VipFailure::HaproxySilent { .. } => "HAProxy is not serving here: `systemctl status haproxy`; keepalived gives the address up while it stays so".into(),
            VipFailure::NoAnswer { from, .. } => format!("the address does not serve as seen from {from}: see its vip_holder and haproxy_answers checks, and the backend_server checks"),
            VipFailure::NeverReached { web, .. } => format!("see the backend_server check for {web}; `foobar verify --limit {web}` checks the host itself"),
        }
    }

    fn check(self, name: &'static str) -> Check {
        let hint = self.hint();
        Check::fail(name, self.to_string(), hint)
    }
}

fn first_answer(p: &Probe) -> String {
    p.answers
        .first()
        .map(|a| a.chars().take(120).collect::<String>())
        .unwrap_or_else(|| "no answer".into())
        .trim()
        .to_string()
}

/// Checks per load balancer from their probes (hosts whose probe could not run are left out:
/// their reachability check says why; they count as not holding).
pub fn evaluate(
    cfg: &VipConfig,
    probes: &BTreeMap<HostName, Probe>,
    web: &[HostName],
) -> BTreeMap<HostName, Vec<Check>> {
    let holders: Vec<String> = probes
        .iter()
        .filter(|(_, p)| p.holds)
        .map(|(h, _)| h.to_string())
        .collect();
    let mut out = BTreeMap::new();
    for (h, p) in probes {
        let mut checks = Vec::new();
        checks.push(match holders.len() {
            1 => Check::pass(
                "vip_holder",
                format!("{} is held by {} only", cfg.address, holders[0]),
            ),
            0 => VipFailure::NoHolder {
                address: cfg.address.clone(),
            }
            .check("vip_holder"),
            _ => VipFailure::TwoHolders {
                address: cfg.address.clone(),
                holders: holders.clone(),
            }
            .check("vip_holder"),
        });
        if p.keepalived {
            checks.push(Check::pass("keepalived", "keepalived is running"));
            let agrees = match p.state.as_str() {
                "MASTER" => p.holds,
                "BACKUP" => !p.holds,
                _ => false,
            };
            checks.push(if agrees {
                Check::pass(
                    "vrrp_state",
                    format!(
                        "keepalived is {} and {}",
                        p.state,
                        if p.holds {
                            "holds the address"
                        } else {
                            "does not hold it"
                        }
                    ),
                )
            } else {
                VipFailure::Disagrees {
                    state: p.state.clone(),
                    holds: p.holds,
                }
                .check("vrrp_state")
            });
        } else {
            checks.push(VipFailure::KeepalivedStopped.check("keepalived"));
        }
        checks.push(if p.haproxy {
            Check::pass("haproxy_answers", "HAProxy answers on its runtime API")
        } else {
            VipFailure::HaproxySilent {
                socket: cfg.socket.clone(),
            }
            .check("haproxy_answers")
        });
        let answered = p.answers.iter().filter(|a| a.starts_with("200 ")).count();
        checks.push(if answered > 0 {
            Check::pass(
                "http_through_vip",
                format!(
                    "GET http://{}/ via {} from {h}: {answered} of {} answered 200",
                    cfg.domain,
                    cfg.frontend,
                    p.answers.len()
                ),
            )
        } else {
            VipFailure::NoAnswer {
                domain: cfg.domain.clone(),
                frontend: cfg.frontend.clone(),
                from: h.clone(),
                first: first_answer(p),
            }
            .check("http_through_vip")
        });
        // Which web hosts answered is judged over every probe together: the probes run at
        // once, so round robin may hand each load balancer's requests to one host only.
        if holders.first().is_some_and(|x| x == h.as_str())
            || (holders.is_empty() && out.is_empty())
        {
            for w in web {
                let needle = format!("served by {w}");
                let n: usize = probes
                    .values()
                    .map(|p| {
                        p.answers
                            .iter()
                            .filter(|a| a.starts_with("200 ") && a.contains(&needle))
                            .count()
                    })
                    .sum();
                checks.push(if n > 0 {
                    Check::pass(
                        "http_through_vip",
                        format!(
                            "GET http://{}/ via {} reached {w} ({n} times)",
                            cfg.domain, cfg.frontend
                        ),
                    )
                } else {
                    VipFailure::NeverReached {
                        domain: cfg.domain.clone(),
                        frontend: cfg.frontend.clone(),
                        web: w.clone(),
                        first: first_answer(p),
                    }
                    .check("http_through_vip")
                });
            }
        }
        out.insert(h.clone(), checks);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VipConfig {
        VipConfig {
            address: "198.51.100.10".into(),
            interface: "eth0".into(),
            frontend: "198.51.100.10:80".into(),
            domain: "www.foobar.com".into(),
            socket: "/run/haproxy/admin.sock".into(),
        }
    }

    fn probe(holds: bool, state: &str) -> Probe {
        parse(&format!(
            "#vip:holds\n{}\n#vip:keepalived\nrunning\n#vip:state\n{state}\n#vip:haproxy\nanswering\n#vip:http\n200 <p>served by web-01</p>\n200 <p>served by web-02</p>\n#vip:end\n",
            if holds { "yes" } else { "no" }
        ))
    }

    fn web() -> Vec<HostName> {
        vec![HostName::new("web-01"), HostName::new("web-02")]
    }

    #[test]
    fn one_master_holding_and_one_backup_is_healthy() {
        let probes = BTreeMap::from([
            (HostName::new("lb-01"), probe(true, "MASTER")),
            (HostName::new("lb-02"), probe(false, "BACKUP")),
        ]);
        let out = evaluate(&cfg(), &probes, &web());
        for checks in out.values() {
            assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        }
        assert!(
            out[&HostName::new("lb-02")][0]
                .detail
                .contains("held by lb-01 only")
        );
    }

    #[test]
    fn two_holders_fail_naming_both() {
        let probes = BTreeMap::from([
            (HostName::new("lb-01"), probe(true, "MASTER")),
            (HostName::new("lb-02"), probe(true, "MASTER")),
        ]);
        let out = evaluate(&cfg(), &probes, &web());
        let c = &out[&HostName::new("lb-01")][0];
        assert!(!c.ok);
        assert_eq!(c.detail, "198.51.100.10 is held by lb-01 and lb-02 at once");
        assert!(c.hint.as_deref().unwrap().contains("split brain"));
    }

    #[test]
    fn no_holder_a_stopped_keepalived_and_a_silent_haproxy_fail() {
        let mut down = probe(false, "FAULT");
        down.keepalived = false;
        down.haproxy = false;
        let probes = BTreeMap::from([
            (HostName::new("lb-01"), down),
            (HostName::new("lb-02"), probe(false, "FAULT")),
        ]);
        let out = evaluate(&cfg(), &probes, &web());
        let failed: Vec<&str> = out[&HostName::new("lb-01")]
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, ["vip_holder", "keepalived", "haproxy_answers"]);
        let lb2 = &out[&HostName::new("lb-02")];
        assert!(lb2.iter().any(|c| c.name == "vrrp_state" && !c.ok));
    }

    #[test]
    fn a_web_host_never_reached_through_the_address_fails() {
        let mut p = probe(true, "MASTER");
        p.answers = vec!["000 timed out".into()];
        let probes = BTreeMap::from([(HostName::new("lb-01"), p)]);
        let out = evaluate(&cfg(), &probes, &web());
        let c = out[&HostName::new("lb-01")]
            .iter()
            .find(|c| c.name == "http_through_vip")
            .unwrap();
        assert!(!c.ok);
        assert_eq!(
            c.detail,
            "GET http://www.foobar.com/ via 198.51.100.10:80 from lb-01 never answered 200 (000 timed out)"
        );
    }

    #[test]
    fn web_hosts_are_counted_over_both_probes_on_the_holder() {
        let mut a = probe(true, "MASTER");
        a.answers = vec!["200 served by web-01".into()];
        let mut b = probe(false, "BACKUP");
        b.answers = vec!["200 served by web-02".into()];
        let probes = BTreeMap::from([(HostName::new("lb-01"), a), (HostName::new("lb-02"), b)]);
        let out = evaluate(&cfg(), &probes, &web());
        let reached = |h: &str| {
            out[&HostName::new(h)]
                .iter()
                .filter(|c| c.detail.contains(" reached "))
                .map(|c| c.ok)
                .collect::<Vec<_>>()
        };
        assert_eq!(reached("lb-01"), [true, true]);
        assert!(reached("lb-02").is_empty());
        let mut c = probe(true, "MASTER");
        c.answers = vec!["200 served by web-01".into()];
        let only = BTreeMap::from([(HostName::new("lb-01"), c)]);
        let out = evaluate(&cfg(), &only, &web());
        assert!(out[&HostName::new("lb-01")].iter().any(|c| {
            !c.ok
                && c.detail
                    .ends_with("never reached web-02 (200 served by web-01)")
        }));
    }

    #[test]
    fn the_probe_script_quotes_its_values() {
        let text = probe_script(&cfg(), 6).to_stdin().unwrap();
        assert!(text.contains("vip_probe eth0 198.51.100.10 /run/haproxy/admin.sock 198.51.100.10:80 www.foobar.com 6"), "{text}");
    }
}
