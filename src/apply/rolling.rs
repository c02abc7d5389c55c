//! Rolling changes behind the load balancers: for each batch of hosts, drain it in HAProxy
//! through the runtime API, wait for its sessions to end, put it in maintenance, apply, check
//! it directly, put it back and wait until HAProxy itself reports it UP. With a pair of load
//! balancers every step is done on each of them: the floating address may move to the peer
//! at any moment, and a host drained on one only would still get requests from the other. A host that fails its
//! health gate has its files restored, stays out of rotation, and stops the rollout.
//!
//! The runtime API is HAProxy's admin socket on the load balancer, spoken over SSH by
//! [`crate::remote::haproxy::haproxy_runtime`] (also used by `verify`); restoring a host is
//! [`crate::remote::backups::restore_script`], the same routine an apply script's rollback uses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::RolloutError;

/// How often a rollout asks HAProxy (sessions drained, server UP) and the host (health gate)
/// while it waits: the wait is what a rollout costs per host, so the poll is short.
const POLL: Duration = Duration::from_millis(50);
use crate::inventory::HostName;
use crate::transport::{RemoteCommand, Transport};

/// HAProxy on one load balancer.
pub struct Node {
    pub host: HostName,
    pub transport: Arc<dyn Transport>,
}

/// HAProxy on every load balancer, and where to check each backend host directly.
pub struct Balancer {
    /// The first runs the health gate (with a floating address) and is read for the plan.
    pub nodes: Vec<Node>,
    pub socket: String,
    /// The backend the hosts are servers of (`backend web` in the template).
    pub backend: String,
    pub servers: Vec<HostName>,
    /// `host -> ip:port` of its Nginx, and the Host header to send.
    pub direct: std::collections::BTreeMap<HostName, String>,
    pub domain: String,
    pub timeout: Duration,
    /// Run the health gate on the balancer (over its transport) rather than from foobar: with
    /// a floating address the web hosts are on the balancers' network, which foobar's own
    /// machine need not (in the networked lab: must not) reach.
    pub gate_on_balancer: bool,
    /// The pair's floating address, when there is one: a change of the load balancers
    /// themselves goes one at a time, its holder last.
    pub vip: Option<crate::verify::vip::VipConfig>,
}

impl Balancer {
    /// The load balancers, for messages: `lb-01` or `lb-01, lb-02`.
    pub fn names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.host.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn first(&self) -> &Node {
        &self.nodes[0]
    }

    /// Send commands (`;`-separated, one connection) to the runtime API of the first.
    pub async fn runtime(&self, commands: &str) -> Result<String, RolloutError> {
        self.runtime_on(self.first(), commands).await
    }

    async fn runtime_on(&self, node: &Node, commands: &str) -> Result<String, RolloutError> {
        let api = |detail: String| RolloutError::RuntimeApi {
            balancer: node.host.clone(),
            detail,
        };
        let script = crate::remote::haproxy::haproxy_runtime(&self.socket, commands)
            .to_stdin()
            .map_err(|e| api(e.to_string()))?;
        let out = node
            .transport
            .run(
                &RemoteCommand::script(Duration::from_secs(30)),
                Some(format!("{script}\n").as_bytes()),
            )
            .await
            .map_err(|e| api(e.to_string()))?;
        if !out.success() {
            return Err(api(out.stderr_text().trim().to_string()));
        }
        Ok(out.stdout_text())
    }

    /// The server's state on every load balancer, all asked at once.
    async fn set_state(&self, server: &HostName, state: &str) -> Result<(), RolloutError> {
        let command = format!("set server {}/{server} state {state}", self.backend);
        let answers =
            futures::future::join_all(self.nodes.iter().map(|n| self.runtime_on(n, &command)))
                .await;
        for answer in answers {
            let answer = answer?;
            if !answer.trim().is_empty() {
                return Err(RolloutError::Refused {
                    command,
                    answer: answer.trim().to_string(),
                });
            }
        }
        Ok(())
    }

    /// The backend's server states on every load balancer, one after the other (each with its
    /// `#` header): a server in maintenance on any of them is out of rotation.
    pub async fn server_state_all(&self) -> Result<String, RolloutError> {
        let mut all = String::new();
        for node in &self.nodes {
            let text = self
                .runtime_on(node, &format!("show servers state {}", self.backend))
                .await?;
            if !text
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(self.backend.as_str()))
            {
                return Err(RolloutError::NoServers {
                    backend: self.backend.clone(),
                    balancer: node.host.clone(),
                    answer: text.trim().to_string(),
                });
            }
            all.push_str(&text);
        }
        Ok(all)
    }

    /// `(operational state, admin state)` of a server on one load balancer, from `show
    /// servers state`.
    async fn server_state_on(
        &self,
        node: &Node,
        server: &HostName,
    ) -> Result<(String, String), RolloutError> {
        let text = self
            .runtime_on(node, &format!("show servers state {}", self.backend))
            .await?;
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 6 && f[1] == self.backend && f[3] == server.as_str())
            .map(|f| (f[5].to_string(), f[6].to_string()))
            .ok_or_else(|| RolloutError::NotAServer {
                server: server.clone(),
                backend: self.backend.clone(),
                balancer: node.host.clone(),
            })
    }

    /// Whether every load balancer reports the server UP and in rotation.
    async fn up_everywhere(&self, server: &HostName) -> Result<bool, RolloutError> {
        for node in &self.nodes {
            let (op, admin) = self.server_state_on(node, server).await?;
            if op != "2" || admin != "0" {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The server's current sessions, summed over every load balancer.
    async fn current_sessions(&self, server: &HostName) -> Result<u64, RolloutError> {
        let mut sessions = 0;
        for node in &self.nodes {
            let text = self.runtime_on(node, "show stat").await?;
            sessions += self.sessions_in(&text, server);
        }
        Ok(sessions)
    }

    /// The server's current sessions in `show stat` output (CSV: pxname,svname,qcur,qmax,scur,...).
    fn sessions_in(&self, stat: &str, server: &HostName) -> u64 {
        stat.lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.len() > 4 && f[0] == self.backend && f[1] == server.as_str())
            .and_then(|f| f[4].parse().ok())
            .unwrap_or(0)
    }

    /// The load balancer `host`, if it is one of these.
    pub fn node(&self, host: &HostName) -> Option<&Node> {
        self.nodes.iter().find(|n| &n.host == host)
    }

    /// Whether the load balancer holds the floating address now (false when unknown).
    async fn holds_address(&self, node: &Node) -> bool {
        let Some(cfg) = &self.vip else { return false };
        let Ok(script) = crate::verify::vip::probe_script(cfg, 0).to_stdin() else {
            return false;
        };
        match node
            .transport
            .run(
                &RemoteCommand::script(Duration::from_secs(10)),
                Some(script.as_bytes()),
            )
            .await
        {
            Ok(out) if out.success() => crate::verify::vip::parse(&out.stdout_text()).holds,
            _ => false,
        }
    }

    /// Load balancers in the order a change of their own goes: the holder of the floating
    /// address last, so the address stays on a load balancer that is not changing until the
    /// others are done and serving.
    pub async fn holder_last<'h>(&self, hosts: Vec<&'h HostName>) -> Vec<&'h HostName> {
        let mut holders = Vec::new();
        let mut rest = Vec::new();
        for h in hosts {
            let holds = match self.node(h) {
                Some(n) => self.holds_address(n).await,
                None => false,
            };
            if holds { holders.push(h) } else { rest.push(h) }
        }
        rest.extend(holders);
        rest
    }

    /// Wait (bounded) until HAProxy on the load balancer answers on its runtime API: its
    /// change is done before the next load balancer's starts.
    pub async fn serving(&self, host: &HostName) -> Result<(), RolloutError> {
        let Some(node) = self.node(host) else {
            return Ok(());
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Ok(info) = self.runtime_on(node, "show info").await
                && info.lines().any(|l| l.starts_with("Pid: "))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(RolloutError::NotServing {
                    balancer: host.clone(),
                    seconds: self.timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Out of rotation: drain on every load balancer, wait for its sessions to end there
    /// (bounded), then maintenance. On each, the drain and the first look at the sessions
    /// share one runtime-API call (one SSH command): `set server` answers nothing when it
    /// succeeds, so any text before `show stat`'s CSV header is its refusal.
    pub async fn take_out(&self, server: &HostName) -> Result<(), RolloutError> {
        let set = format!("set server {}/{server} state drain", self.backend);
        let command = format!("{set}; show stat");
        let answers =
            futures::future::join_all(self.nodes.iter().map(|n| self.runtime_on(n, &command)))
                .await;
        let mut sessions = 0;
        for answer in answers {
            let answer = answer?;
            let (refusal, stat) = match answer.find("# pxname") {
                Some(i) => answer.split_at(i),
                None => (answer.as_str(), ""),
            };
            if !refusal.trim().is_empty() {
                return Err(RolloutError::Refused {
                    command: set,
                    answer: refusal.trim().to_string(),
                });
            }
            sessions += self.sessions_in(stat, server);
        }
        let deadline = Instant::now() + self.timeout;
        while sessions > 0 && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            sessions = self.current_sessions(server).await?;
        }
        self.set_state(server, "maint").await
    }

    /// Back in rotation, once HAProxy's own check sees it UP (bounded).
    pub async fn put_back(&self, server: &HostName) -> Result<(), RolloutError> {
        self.set_state(server, "ready").await?;
        let deadline = Instant::now() + self.timeout;
        loop {
            if self.up_everywhere(server).await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.set_state(server, "maint").await?;
                return Err(RolloutError::NotUp {
                    server: server.clone(),
                    seconds: self.timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `GET /` from the balancer to `addr` answered 200.
    async fn gate_from_balancer(&self, addr: &str) -> bool {
        let Ok(script) = crate::remote::haproxy::http_get(addr, &self.domain).to_stdin() else {
            return false;
        };
        match self
            .first()
            .transport
            .run(
                &RemoteCommand::script(Duration::from_secs(10)),
                Some(script.as_bytes()),
            )
            .await
        {
            Ok(out) => out.success() && out.stdout_text().lines().next() == Some("200"),
            Err(_) => false,
        }
    }

    /// Ask the host's Nginx (and through it the app) directly until it answers 200.
    pub async fn health_gate(&self, server: &HostName) -> Result<(), RolloutError> {
        let Some(addr) = self.direct.get(server) else {
            return Err(RolloutError::NoAddress(server.clone()));
        };
        let deadline = Instant::now() + self.timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if self.gate_on_balancer {
                if self.gate_from_balancer(addr).await {
                    return Ok(());
                }
            } else {
                match crate::http::Client::GATE.get_ok(addr, &self.domain).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = Some(e),
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Err(RolloutError::Unhealthy {
            server: server.clone(),
            seconds: self.timeout.as_secs(),
            last,
        })
    }
}
