//! The load balancer for rolling plays: HAProxy's address and sockets, and the servers an
//! earlier rollout left in maintenance.

use std::collections::BTreeMap;
use std::time::Duration;

use super::session::{Connections, Session};
use crate::apply::rolling::{Balancer, Node};
use crate::inventory::HostName;
use crate::plan::{self, Plan};
use crate::render::DesiredState;

/// HAProxy on every host of group `loadbalancer`, for rolling plays: their transports (the
/// run's own, or the support connections when `--limit` left them out), the admin socket, and
/// each `web` host's Nginx address for the health gate. A load balancer that could not be
/// reached (it is not tried again, and the run reports it) is left out: draining on the others
/// still keeps their requests off a changing host. None when none could be reached.
pub fn balancer(loaded: &Session, conn: &Connections) -> Option<Balancer> {
    let inv = &loaded.inventory;
    let nodes: Vec<Node> = inv
        .topology
        .load_balancers
        .iter()
        .filter_map(|h| {
            Some(Node {
                host: h.clone(),
                transport: conn.get(h)?.clone(),
            })
        })
        .collect();
    let lb = nodes.first()?.host.clone();
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
    let servers = inv.topology.web_servers.clone();
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
        nodes,
        socket: text("haproxy_admin_socket", "/run/haproxy/admin.sock"),
        backend: text("haproxy_backend", "web"),
        servers,
        direct,
        domain: text("domain", "localhost"),
        timeout: Duration::from_secs(30),
        gate_on_balancer: vars.contains_key("vip"),
        vip: crate::verify::vip::config(inv),
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
    for host in in_maintenance(&text, &b.backend) {
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
                    name: format!("{}/{host} on {}", b.backend, b.names()),
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

/// The servers of `backend` that HAProxy's `show servers state` lists with an admin state
/// (maintenance, drain), by server name. Columns are found by the names in the `#` header
/// line (the positions of HAProxy 2.x when it has none).
pub fn in_maintenance(state: &str, backend: &str) -> Vec<HostName> {
    let header: Option<Vec<&str>> = state
        .lines()
        .find_map(|l| l.strip_prefix('#'))
        .map(|h| h.split_whitespace().collect());
    let column = |name: &str, default: usize| {
        header
            .as_ref()
            .and_then(|h| h.iter().position(|c| *c == name))
            .unwrap_or(default)
    };
    let (be_name, srv_name, admin) = (
        column("be_name", 1),
        column("srv_name", 3),
        column("srv_admin_state", 6),
    );
    state
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > be_name.max(srv_name).max(admin))
        .filter(|f| f[be_name] == backend && f[admin] != "0")
        .map(|f| HostName::new(f[srv_name]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show servers state web` from HAProxy 2.6 (Debian 12): web-02 put in maintenance
    /// (`disable server`), web-01 in service.
    const STATE: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 web 1 web-01 127.0.1.2 2 0 1 1 41 6 3 4 6 0 0 0 - 80 - 0 0 - - 0
3 web 2 web-02 127.0.1.3 0 1 1 1 7 6 3 0 14 0 0 0 - 80 - 0 0 - - 0
";

    #[test]
    fn servers_in_maintenance_by_header_names() {
        assert_eq!(in_maintenance(STATE, "web"), vec![HostName::new("web-02")]);
        assert!(in_maintenance(STATE, "other").is_empty());
    }

    #[test]
    fn columns_follow_the_header_not_positions() {
        let moved = "1\n# srv_admin_state be_name srv_name\n1 web web-01\n0 web web-02\n";
        assert_eq!(in_maintenance(moved, "web"), vec![HostName::new("web-01")]);
        assert!(in_maintenance("", "web").is_empty());
    }
}
