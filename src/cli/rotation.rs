//! The load balancer for rolling plays: HAProxy's address and sockets, and the servers an
//! earlier rollout left in maintenance.

use std::collections::BTreeMap;
use std::time::Duration;

use super::session::{Connections, Session};
use crate::apply::rolling::Balancer;
use crate::inventory::HostName;
use crate::plan::{self, Plan};
use crate::render::DesiredState;

/// HAProxy on the first host of group `loadbalancer`, for rolling plays: its transport (the
/// run's own, or the support connection when `--limit` left it out; none when it could not be
/// reached: it is not tried again), admin socket, and each `web` host's Nginx address for the
/// health gate.
pub fn balancer(loaded: &Session, conn: &Connections) -> Option<Balancer> {
    let inv = &loaded.inventory;
    let lb = loaded.balancer_host()?;
    let transport = conn.get(&lb)?.clone();
    let vars = inv.host_vars(&lb);
    let text = |name: &str, default: &str| {
        vars.get(name)
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_else(|| default.to_string())
    };
    let servers = inv
        .groups
        .get("web")
        .map(|g| g.hosts.clone())
        .unwrap_or_default();
    let direct = servers
        .iter()
        .filter_map(|h| {
            let port = inv
                .host_vars(h)
                .get("nginx_port")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "80".into());
            Some((
                h.clone(),
                format!("{}:{port}", inv.hosts[h].private_ip.as_ref()?),
            ))
        })
        .collect();
    Some(Balancer {
        host: lb,
        transport,
        socket: text("haproxy_admin_socket", "/run/haproxy/admin.sock"),
        backend: text("haproxy_backend", "web"),
        servers,
        direct,
        domain: text("domain", "localhost"),
        timeout: Duration::from_secs(30),
    })
}

/// Hosts an earlier rollout left in maintenance: the plan brings them back (after the gate).
pub async fn mark_out_of_rotation(
    plan: &mut Plan,
    balancer: Option<&Balancer>,
    desired: &BTreeMap<HostName, DesiredState>,
) {
    let Some(b) = balancer else { return };
    let Ok(text) = b.server_state_all().await else {
        return;
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 || f[1] != b.backend || f[6] == "0" {
            continue;
        }
        let host = HostName::new(f[3]);
        let Some(play) = desired
            .get(&host)
            .and_then(|d| d.plays.iter().find(|p| p.serial.is_some()))
        else {
            continue;
        };
        if let Some(hp) = plan.hosts.get_mut(&host) {
            hp.changes.push(plan::Change::new(
                play.index,
                plan::Step::Rotation {
                    name: format!("{}/{host} on {}", b.backend, b.host),
                },
                plan::Action::Start,
                vec![
                    "in maintenance since an earlier rollout; back once its health gate passes"
                        .into(),
                ],
            ));
        }
    }
}
