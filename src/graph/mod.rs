//! The stack drawn as the design draws it: users → load balancer(s) → each web host's Nginx →
//! its app → the database primary (writes) or the host's own replica (reads), replication
//! arrows from the primary to every replica, and the monitoring host scraping every host.
//!
//! In: the inventory (groups `loadbalancer`, `web`, `db_primary`, `db_replica`, `monitoring`;
//! the topology is read from them, so a failover that moves the primary moves the arrows) and,
//! for `--live`, verify's [`Health`]. Out: Mermaid or Graphviz dot text. Pure: no I/O here.
//! With a health, every node and edge is green or red by the checks that concern it, and a
//! red one carries the failing checks as its tooltip.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::inventory::{HostName, Inventory};
use crate::mysql::Check;
use crate::verify::Health;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Users,
    LoadBalancer,
    Nginx,
    App,
    Primary,
    Replica,
    Prometheus,
    /// What Prometheus scrapes on a host besides its services: node exporter, and on a
    /// database host mysqld exporter.
    Exporters,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub label: String,
    pub kind: Kind,
    /// The host it runs on; `None` for the users.
    pub host: Option<HostName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    Http,
    Proxy,
    Sql,
    Replication,
    Scrape,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: &'static str,
    pub kind: EdgeKind,
}

/// Green or red, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failing(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Stack {
    /// Hosts in drawing order, with the nodes each runs.
    pub hosts: Vec<(HostName, Option<String>, Vec<Node>)>,
    pub users: Option<Node>,
    pub edges: Vec<Edge>,
}

fn id(host: &HostName, part: &str) -> String {
    let h: String = host
        .as_str()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{h}_{part}")
}

/// The stack from the inventory's groups.
pub fn stack(inv: &Inventory) -> Stack {
    let topology = &inv.topology;
    let lbs = topology.load_balancers.clone();
    let web = topology.web_servers.clone();
    let primaries: Vec<HostName> = topology.database_primary.iter().cloned().collect();
    let replicas = topology.database_replicas.clone();
    let monitoring = topology.monitoring.clone();
    let primary = primaries.first();

    let mut order: Vec<HostName> = Vec::new();
    for h in lbs
        .iter()
        .chain(&web)
        .chain(&primaries)
        .chain(&replicas)
        .chain(&monitoring)
    {
        if !order.contains(h) {
            order.push(h.clone());
        }
    }
    let mut hosts = Vec::new();
    let mut edges = Vec::new();
    // With a pair, users reach the floating address, which one of the load balancers holds.
    let floating = crate::verify::vip::config(inv)
        .map(|v| format!(" → {} (floating, VRRP)", v.address))
        .unwrap_or_default();
    let users = lbs.first().map(|lb| Node {
        id: "users".into(),
        label: match inv.host_vars(lb).get("domain").and_then(|v| v.as_str()) {
            Some(domain) => format!("Users → DNS {domain}{floating}"),
            None => format!("Users{floating}"),
        },
        kind: Kind::Users,
        host: None,
    });
    if let Some(u) = &users {
        for lb in &lbs {
            // What users speak to the load balancer: HTTPS when it terminates TLS.
            let https = crate::audit::truthy(inv.host_vars(lb).get("https"));
            edges.push(Edge {
                from: u.id.clone(),
                to: id(lb, "haproxy"),
                label: if https { "HTTPS" } else { "HTTP" },
                kind: EdgeKind::Http,
            });
        }
    }
    for h in &order {
        let mut nodes = Vec::new();
        let node = |part: &str, label: &str, kind: Kind| Node {
            id: id(h, part),
            label: label.to_string(),
            kind,
            host: Some(h.clone()),
        };
        if lbs.contains(h) {
            nodes.push(node("haproxy", "HAProxy", Kind::LoadBalancer));
        }
        if web.contains(h) {
            nodes.push(node("nginx", "Nginx", Kind::Nginx));
            nodes.push(node("app", "App", Kind::App));
        }
        if primary == Some(h) {
            nodes.push(node("db", "MySQL primary", Kind::Primary));
        } else if replicas.contains(h) {
            nodes.push(node("db", "MySQL replica", Kind::Replica));
        }
        if monitoring.contains(h) {
            nodes.push(node("prometheus", "Prometheus", Kind::Prometheus));
        }
        if !monitoring.is_empty() {
            let label = if primary == Some(h) || replicas.contains(h) {
                "node + mysqld exporters"
            } else {
                "node exporter"
            };
            nodes.push(node("exporters", label, Kind::Exporters));
        }
        let address = inv.hosts.get(h).and_then(|x| x.private_ip.clone());
        hosts.push((h.clone(), address, nodes));
    }
    for lb in &lbs {
        for w in &web {
            edges.push(Edge {
                from: id(lb, "haproxy"),
                to: id(w, "nginx"),
                label: "HTTP",
                kind: EdgeKind::Http,
            });
        }
    }
    // `db_write_address: load_balancer`: the apps write through the load balancers'
    // `db_write`, which only the primary is behind, and read from their own host's server.
    let via_lb = !lbs.is_empty()
        && web.first().is_some_and(|w| {
            inv.host_vars(w)
                .get("db_write_address")
                .and_then(|v| v.as_str())
                == Some("load_balancer")
        });
    if let (true, Some(p)) = (via_lb, primary) {
        for lb in &lbs {
            edges.push(Edge {
                from: id(lb, "haproxy"),
                to: id(p, "db"),
                label: "db_write",
                kind: EdgeKind::Sql,
            });
        }
    }
    for w in &web {
        edges.push(Edge {
            from: id(w, "nginx"),
            to: id(w, "app"),
            label: "proxy",
            kind: EdgeKind::Proxy,
        });
        if let Some(p) = primary {
            edges.push(Edge {
                from: id(w, "app"),
                to: if via_lb {
                    id(&lbs[0], "haproxy")
                } else {
                    id(p, "db")
                },
                label: "writes",
                kind: EdgeKind::Sql,
            });
        }
        // Through db_write, the primary's own app reads from its own server too.
        if replicas.contains(w) || (via_lb && primary == Some(w)) {
            edges.push(Edge {
                from: id(w, "app"),
                to: id(w, "db"),
                label: "reads",
                kind: EdgeKind::Sql,
            });
        }
    }
    if let Some(p) = primary {
        for r in &replicas {
            edges.push(Edge {
                from: id(p, "db"),
                to: id(r, "db"),
                label: "replication",
                kind: EdgeKind::Replication,
            });
        }
    }
    // Prometheus scrapes what prometheus.yml lists: every host's exporters, and HAProxy's
    // own metrics on the load balancers (not Nginx or the app, which export none).
    for m in &monitoring {
        for (_, _, nodes) in &hosts {
            for n in nodes
                .iter()
                .filter(|n| matches!(n.kind, Kind::Exporters | Kind::LoadBalancer))
            {
                edges.push(Edge {
                    from: id(m, "prometheus"),
                    to: n.id.clone(),
                    label: "scrapes",
                    kind: EdgeKind::Scrape,
                });
            }
        }
    }
    Stack {
        hosts,
        users,
        edges,
    }
}

/// Which node or edge a check concerns. Replication checks of a replica belong to the arrow
/// from its primary; HAProxy's view of a server and HTTP reaching it, to the arrow from the
/// load balancer to that host; services to the node that runs them; a host that cannot be
/// reached, to every node on it.
enum Target {
    Node(String),
    Edge(String, String),
    Host(HostName),
}

fn targets(stack: &Stack, host: &HostName, c: &Check) -> Vec<Target> {
    let on = |part: &str| Target::Node(id(host, part));
    let has = |part: &str| {
        stack
            .hosts
            .iter()
            .any(|(h, _, nodes)| h == host && nodes.iter().any(|n| n.id == id(host, part)))
    };
    let server_named = |text: &str| -> Option<HostName> {
        stack
            .hosts
            .iter()
            .map(|(h, _, _)| h)
            // "web/web-01 is DOWN …", "… never reached web-01 (…)".
            .find(|h| {
                text.contains(&format!("/{h} "))
                    || text.ends_with(&format!("reached {h}"))
                    || text.contains(&format!("reached {h} "))
            })
            .cloned()
    };
    match c.name {
        "reachable" => vec![Target::Host(host.clone())],
        "io_thread" | "sql_thread" | "io_error" | "sql_error" | "lag" | "source" | "heartbeat"
        | "replication" => {
            let primary = stack
                .edges
                .iter()
                .find(|e| e.kind == EdgeKind::Replication && e.to == id(host, "db"));
            match primary {
                Some(e) => vec![Target::Edge(e.from.clone(), e.to.clone())],
                None => vec![on("db")],
            }
        }
        "backend_server" | "http_through_lb" => match server_named(&c.detail) {
            Some(w) => vec![Target::Edge(id(host, "haproxy"), id(&w, "nginx"))],
            None => vec![on("haproxy")],
        },
        "nginx_config" => vec![on("nginx")],
        "service" => {
            let svc = c.detail.split_whitespace().next().unwrap_or("");
            let part = match svc {
                "nginx" => "nginx",
                "foobar-app" => "app",
                "haproxy" => "haproxy",
                "prometheus" => "prometheus",
                s if s.starts_with("mysql") || s.starts_with("mariadb") => "db",
                // Exporters: the arrow that scrapes this host.
                _ => {
                    return stack
                        .edges
                        .iter()
                        .filter(|e| {
                            e.kind == EdgeKind::Scrape
                                && stack.hosts.iter().any(|(h, _, nodes)| {
                                    h == host
                                        && nodes
                                            .iter()
                                            .any(|n| n.id == e.to && n.kind == Kind::Exporters)
                                })
                        })
                        .map(|e| Target::Edge(e.from.clone(), e.to.clone()))
                        .collect();
                }
            };
            vec![on(part)]
        }
        _ if has("db") => vec![on("db")],
        _ => vec![Target::Host(host.clone())],
    }
}

/// Every node and edge's status under `health` (keys: node id, or "from->to").
pub fn statuses(stack: &Stack, health: &Health) -> BTreeMap<String, Status> {
    let mut out: BTreeMap<String, Status> = BTreeMap::new();
    for (_, _, nodes) in &stack.hosts {
        for n in nodes {
            out.insert(n.id.clone(), Status::Ok);
        }
    }
    for e in &stack.edges {
        out.insert(format!("{}->{}", e.from, e.to), Status::Ok);
    }
    let mut fail = |key: String, why: String| {
        let entry = out.entry(key).or_insert(Status::Ok);
        match entry {
            Status::Ok => *entry = Status::Failing(vec![why]),
            Status::Failing(v) => v.push(why),
        }
    };
    for (host, hh) in &health.hosts {
        for c in hh.checks.iter().filter(|c| !c.ok) {
            let why = format!("{host}: {} — {}", c.name, c.detail);
            for t in targets(stack, host, c) {
                match t {
                    Target::Node(n) => fail(n, why.clone()),
                    Target::Edge(a, b) => fail(format!("{a}->{b}"), why.clone()),
                    Target::Host(h) => {
                        for (x, _, nodes) in &stack.hosts {
                            if *x == h {
                                for n in nodes {
                                    fail(n.id.clone(), why.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

const GREEN: &str = "#2e7d32";
const GREEN_FILL: &str = "#e8f5e9";
const RED: &str = "#c62828";
const RED_FILL: &str = "#ffebee";

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Mermaid flowchart: one subgraph per host (named with its address).
pub fn mermaid(stack: &Stack, live: Option<&BTreeMap<String, Status>>) -> String {
    let mut o = String::from("flowchart TB\n");
    if let Some(u) = &stack.users {
        let _ = writeln!(o, "    {}([\"{}\"])", u.id, mermaid_text(&u.label));
    }
    for (h, addr, nodes) in &stack.hosts {
        let title = match addr {
            Some(a) => format!("{h} ({a})"),
            None => h.to_string(),
        };
        let _ = writeln!(
            o,
            "    subgraph {}[\"{}\"]",
            id(h, "host"),
            mermaid_text(&title)
        );
        for n in nodes {
            let label = mermaid_text(&n.label);
            let shape = match n.kind {
                Kind::Primary | Kind::Replica => format!("[(\"{label}\")]"),
                _ => format!("[\"{label}\"]"),
            };
            let _ = writeln!(o, "        {}{shape}", n.id);
        }
        let _ = writeln!(o, "    end");
    }
    for e in &stack.edges {
        let arrow = match e.kind {
            EdgeKind::Scrape => "-.->",
            EdgeKind::Replication => "==>",
            _ => "-->",
        };
        let _ = writeln!(o, "    {} {arrow}|{}| {}", e.from, e.label, e.to);
    }
    if let Some(st) = live {
        for (_, _, nodes) in &stack.hosts {
            for n in nodes {
                let (stroke, fill) = match st.get(&n.id) {
                    Some(Status::Failing(_)) => (RED, RED_FILL),
                    _ => (GREEN, GREEN_FILL),
                };
                let _ = writeln!(o, "    style {} fill:{fill},stroke:{stroke}", n.id);
            }
        }
        for (i, e) in stack.edges.iter().enumerate() {
            let stroke = match st.get(&format!("{}->{}", e.from, e.to)) {
                Some(Status::Failing(_)) => RED,
                _ => GREEN,
            };
            let _ = writeln!(o, "    linkStyle {i} stroke:{stroke}");
        }
        for (key, status) in st {
            if let Status::Failing(why) = status {
                for w in why {
                    let _ = writeln!(o, "    %% FAIL {key}: {}", w.replace('\n', " "));
                }
            }
        }
    }
    o
}

fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', " ")
}

/// Graphviz dot: one cluster per host; with `live`, colours and tooltips.
pub fn dot(stack: &Stack, live: Option<&BTreeMap<String, Status>>) -> String {
    let mut o = String::from(
        "digraph foobar {\n    rankdir=TB;\n    graph [fontname=\"Helvetica\"];\n    node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let colour = |key: &str| -> String {
        match live.and_then(|st| st.get(key)) {
            None => String::new(),
            Some(Status::Ok) => format!(
                ", color=\"{GREEN}\", fillcolor=\"{GREEN_FILL}\", tooltip=\"{} ok\"",
                dot_text(key)
            ),
            Some(Status::Failing(why)) => format!(
                ", color=\"{RED}\", fillcolor=\"{RED_FILL}\", fontcolor=\"{RED}\", penwidth=2, tooltip=\"{}\"",
                dot_text(&why.join("; "))
            ),
        }
    };
    if let Some(u) = &stack.users {
        let _ = writeln!(
            o,
            "    {} [label=\"{}\", shape=ellipse];",
            u.id,
            dot_text(&u.label)
        );
    }
    for (h, addr, nodes) in &stack.hosts {
        let title = match addr {
            Some(a) => format!("{h} ({a})"),
            None => h.to_string(),
        };
        let _ = writeln!(o, "    subgraph cluster_{} {{", id(h, "host"));
        let _ = writeln!(
            o,
            "        label=\"{}\"; style=\"rounded,dashed\"; color=\"#888888\";",
            dot_text(&title)
        );
        for n in nodes {
            let shape = match n.kind {
                Kind::Primary | Kind::Replica => ", shape=cylinder",
                Kind::Exporters => ", shape=note, fontsize=10",
                _ => "",
            };
            let _ = writeln!(
                o,
                "        {} [label=\"{}\"{shape}{}];",
                n.id,
                dot_text(&n.label),
                colour(&n.id)
            );
        }
        let _ = writeln!(o, "    }}");
    }
    for e in &stack.edges {
        let key = format!("{}->{}", e.from, e.to);
        let live_style = colour(&key);
        let style = match e.kind {
            EdgeKind::Scrape if live_style.is_empty() => {
                ", style=dashed, constraint=false, color=\"#888888\", fontcolor=\"#888888\""
            }
            EdgeKind::Scrape => ", style=dashed, constraint=false",
            EdgeKind::Replication if !live_style.contains("penwidth") => ", penwidth=2",
            _ => "",
        };
        let _ = writeln!(
            o,
            "    {} -> {} [label=\"{}\"{style}{live_style}];",
            e.from, e.to, e.label
        );
    }
    o.push_str("}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::HostHealth;

    fn inv() -> Inventory {
        crate::inventory::load_inventory(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/inventories/lab.yml"
        )))
        .unwrap()
    }

    #[test]
    fn a_pair_is_drawn_behind_its_floating_address() {
        let pair = crate::inventory::load_inventory(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/inventories/lab-net.yml"
        )))
        .unwrap();
        let s = stack(&pair);
        let users = s.users.as_ref().unwrap();
        assert_eq!(
            users.label,
            "Users → DNS www.foobar.com → 198.51.100.10 (floating, VRRP)"
        );
        for lb in ["nlb_01_haproxy", "nlb_02_haproxy"] {
            assert!(
                s.edges.iter().any(|e| e.from == "users" && e.to == lb),
                "{lb}"
            );
        }
        assert!(!stack(&inv()).users.unwrap().label.contains("floating"));
    }

    #[test]
    fn writes_through_the_load_balancer_are_drawn_through_it() {
        let mut i = inv();
        i.vars.insert(
            "db_write_address".into(),
            serde_json::json!("load_balancer"),
        );
        let s = stack(&i);
        let edge = |a: &str, b: &str| s.edges.iter().any(|e| e.from == a && e.to == b);
        assert!(edge("web_02_app", "lb_01_haproxy"), "writes to db_write");
        assert!(
            edge("lb_01_haproxy", "web_01_db"),
            "db_write to the primary"
        );
        assert!(!edge("web_02_app", "web_01_db"));
        assert!(edge("web_01_app", "web_01_db"), "reads from its own server");
        assert!(edge("web_02_app", "web_02_db"));
    }

    #[test]
    fn the_topology_comes_from_the_groups() {
        let s = stack(&inv());
        let names: Vec<&str> = s.hosts.iter().map(|(h, _, _)| h.as_str()).collect();
        assert_eq!(names, ["lb-01", "web-01", "web-02"]);
        let edge = |a: &str, b: &str| s.edges.iter().any(|e| e.from == a && e.to == b);
        assert!(edge("users", "lb_01_haproxy"));
        assert!(edge("lb_01_haproxy", "web_02_nginx"));
        assert!(edge("web_01_db", "web_02_db"), "replication arrow");
        assert!(edge("web_02_app", "web_01_db"), "writes go to the primary");
        assert!(
            edge("web_02_app", "web_02_db"),
            "reads from the local replica"
        );
        // What prometheus.yml scrapes: exporters and HAProxy's metrics, not Nginx.
        assert!(edge("lb_01_prometheus", "web_01_exporters"));
        assert!(edge("lb_01_prometheus", "lb_01_haproxy"));
        assert!(
            !s.edges.iter().any(|e| e.kind == EdgeKind::Scrape
                && (e.to.ends_with("_nginx") || e.to.ends_with("_app")))
        );
        // Users reach the load balancer over HTTP here; over HTTPS with `https: true`.
        assert!(
            s.edges
                .iter()
                .any(|e| e.from == "users" && e.label == "HTTP")
        );
        let mut tls = inv();
        tls.vars.insert("https".into(), true.into());
        let s = stack(&tls);
        assert!(
            s.edges
                .iter()
                .filter(|e| e.from == "users")
                .all(|e| e.label == "HTTPS")
        );
        // Cluster labels in the nodes' font.
        assert!(dot(&s, None).contains("graph [fontname=\"Helvetica\"]"));
    }

    #[test]
    fn a_stopped_io_thread_turns_the_replication_edge_red() {
        let s = stack(&inv());
        let mut hosts = BTreeMap::new();
        hosts.insert(
            HostName::new("web-02"),
            HostHealth {
                checks: vec![
                    Check::fail("io_thread", "IO thread: No", "run apply"),
                    Check::pass("service", "nginx is active"),
                ],
            },
        );
        hosts.insert(
            HostName::new("lb-01"),
            HostHealth {
                checks: vec![Check::fail(
                    "backend_server",
                    "web/web-01 is DOWN (operational state 0, admin state 0)",
                    "x",
                )],
            },
        );
        let st = statuses(
            &s,
            &Health {
                format_version: 1,
                hosts,
            },
        );
        assert!(
            matches!(&st["web_01_db->web_02_db"], Status::Failing(w) if w[0].contains("io_thread"))
        );
        assert!(matches!(
            &st["lb_01_haproxy->web_01_nginx"],
            Status::Failing(_)
        ));
        assert_eq!(st["lb_01_haproxy->web_02_nginx"], Status::Ok);
        assert_eq!(st["web_02_nginx"], Status::Ok);
        let d = dot(&s, Some(&st));
        assert!(
            d.contains(
                "web_01_db -> web_02_db [label=\"replication\", color=\"#c62828\", fillcolor=\"#ffebee\", fontcolor=\"#c62828\", penwidth=2, tooltip=\"web-02: io_thread — IO thread: No\"];"
            ),
            "{d}"
        );
    }
}
