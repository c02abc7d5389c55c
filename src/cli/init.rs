//! `foobar init DIR`: a minimal inventory for real hosts, ready for `plan`: the hosts and
//! their roles from the command line, the stack's defaults for everything else, and each
//! secret a `file:` reference to a 0600 file of random characters it writes beside it.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::error::ExitCategory;
use crate::inventory::rules;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory to write inventory.yml and secrets/ into (made if missing; an existing
    /// inventory.yml is never overwritten).
    pub dir: PathBuf,
    /// Load balancers, `NAME=PRIVATE_IP` (comma-separated or repeated).
    #[arg(long = "lb", value_delimiter = ',', required = true)]
    pub lb: Vec<String>,
    /// Web hosts (Nginx, the app and a database server each), `NAME=PRIVATE_IP`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub web: Vec<String>,
    /// The database primary, one of the web hosts [default: the first].
    #[arg(long)]
    pub db_primary: Option<String>,
    /// The hosts Prometheus runs on [default: the first load balancer].
    #[arg(long, value_delimiter = ',')]
    pub monitoring: Vec<String>,
    /// Where the database accepts the app and the replicas from, a MySQL host pattern
    /// [default: the web hosts' /24, e.g. `10.0.0.%`].
    #[arg(long)]
    pub db_network: Option<String>,
    /// What HAProxy binds [default: `*:80`].
    #[arg(long)]
    pub haproxy_bind: Option<String>,
    /// The site's name [default: the stack's, www.foobar.com].
    #[arg(long)]
    pub domain: Option<String>,
    /// SSH connects through this ssh_config (which names each host) instead of to each
    /// host's private IP as root.
    #[arg(long)]
    pub ssh_config: Option<PathBuf>,
    /// The stack's playbook: its variables.yml becomes inventory.schema.json beside the
    /// inventory, for editors.
    #[arg(short, long, env = "FOOBAR_PLAYBOOK", default_value = super::DEFAULT_PLAYBOOK)]
    pub playbook: PathBuf,
}

struct Host {
    name: String,
    ip: IpAddr,
}

fn usage(message: String, hint: &str) -> CliError {
    CliError::Usage {
        message,
        hint: hint.into(),
    }
}

fn hosts(what: &str, list: &[String]) -> Result<Vec<Host>, CliError> {
    list.iter()
        .map(|item| {
            let (name, ip) = item.split_once('=').ok_or_else(|| {
                usage(
                    format!("--{what} {item}: expected NAME=PRIVATE_IP"),
                    "e.g. --web web-01=10.0.0.11,web-02=10.0.0.12",
                )
            })?;
            rules::check_destination(name).map_err(|why| {
                usage(
                    format!("--{what} {item}: host name `{name}` {why}"),
                    "a host name is letters, digits, `-` and `.`",
                )
            })?;
            let ip = ip.parse().map_err(|_| {
                usage(
                    format!("--{what} {item}: `{ip}` is not an IP address"),
                    "the host's private address, e.g. 10.0.0.11",
                )
            })?;
            Ok(Host {
                name: name.to_string(),
                ip,
            })
        })
        .collect()
}

/// 32 random hexadecimal characters.
fn random_secret() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random number generator");
    hex::encode(b)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), CliError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            usage(
                format!("cannot create {}: {e}", path.display()),
                "foobar init never overwrites a file: choose another directory, or move the file away",
            )
        })?;
    f.write_all(text.as_bytes()).map_err(|e| {
        usage(
            format!("cannot write {}: {e}", path.display()),
            "check the disk",
        )
    })
}

const SECRETS: &[&str] = &[
    "replication_password",
    "app_db_password",
    "mysqld_exporter_password",
];

pub fn run(args: InitArgs) -> Result<ExitCategory, CliError> {
    let lbs = hosts("lb", &args.lb)?;
    let webs = hosts("web", &args.web)?;
    let all: Vec<&Host> = lbs.iter().chain(&webs).collect();
    for (i, h) in all.iter().enumerate() {
        if all[..i].iter().any(|o| o.name == h.name || o.ip == h.ip) {
            return Err(usage(
                format!("{} ({}) is given twice", h.name, h.ip),
                "each host has its own name and private IP",
            ));
        }
    }
    let primary = args
        .db_primary
        .clone()
        .unwrap_or_else(|| webs[0].name.clone());
    if !webs.iter().any(|w| w.name == primary) {
        return Err(usage(
            format!("--db-primary {primary} is not one of the --web hosts"),
            "the database runs on the web hosts: name one of them",
        ));
    }
    let monitoring = if args.monitoring.is_empty() {
        vec![lbs[0].name.clone()]
    } else {
        args.monitoring.clone()
    };
    for m in &monitoring {
        if !all.iter().any(|h| &h.name == m) {
            return Err(usage(
                format!("--monitoring {m} is not one of the hosts given"),
                "name a --lb or --web host",
            ));
        }
    }
    let network = match &args.db_network {
        Some(n) => n.clone(),
        None => match webs[0].ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.%", o[0], o[1], o[2])
            }
            IpAddr::V6(_) => {
                return Err(usage(
                    "the web hosts have IPv6 addresses: foobar cannot guess their network".into(),
                    "give --db-network, a MySQL host pattern for the private network",
                ));
            }
        },
    };
    for (what, v) in [
        ("--db-network", Some(&network)),
        ("--haproxy-bind", args.haproxy_bind.as_ref()),
        ("--domain", args.domain.as_ref()),
    ] {
        if let Some(v) = v
            && !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._%*:[]".contains(c))
        {
            return Err(usage(
                format!("{what} `{v}` holds characters an inventory value of this kind never has"),
                "letters, digits and `-._%*:[]`",
            ));
        }
    }

    let dir = &args.dir;
    std::fs::create_dir_all(dir).map_err(|e| {
        usage(
            format!("cannot create {}: {e}", dir.display()),
            "check the path",
        )
    })?;
    let inventory = dir.join("inventory.yml");
    if inventory.exists() {
        return Err(usage(
            format!("{} exists", inventory.display()),
            "foobar init never overwrites an inventory: choose another directory",
        ));
    }
    let secrets_dir = dir.join("secrets");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&secrets_dir)
        .map_err(|e| {
            usage(
                format!("cannot create {}: {e}", secrets_dir.display()),
                "check the path",
            )
        })?;

    let schema = crate::inventory::Schema::beside(&args.playbook)?;
    let mut y = String::new();
    if schema.is_some() {
        y.push_str("# yaml-language-server: $schema=inventory.schema.json\n");
    }
    y.push_str(
        "# Written by `foobar init`. Every variable of the stack not set here takes its default\n",
    );
    y.push_str(
        "# (docs/reference/variables.md; `foobar vars HOST` shows each value and its source).\n",
    );
    match &args.ssh_config {
        Some(cfg) => y.push_str(&format!(
            "ssh:\n  ssh_config: {}\n  strict_host_key_checking: true\n",
            cfg.display()
        )),
        None => y.push_str(
            "ssh:\n  user: root\n  # Trust each host's key on first contact and record it; a changed key is refused.\n  strict_host_key_checking: accept-new\n  known_hosts_file: known_hosts\n",
        ),
    }
    y.push_str("\nvars:\n");
    if let Some(d) = &args.domain {
        y.push_str(&format!("  domain: {d}\n"));
    }
    if let Some(b) = &args.haproxy_bind {
        y.push_str(&format!("  haproxy_bind: \"{b}\"\n"));
    }
    y.push_str(&format!(
        "  # Who may connect to the databases: the hosts' private network.\n  app_db_host_pattern: \"{network}\"\n  replication_host_pattern: \"{network}\"\n"
    ));
    y.push_str(
        "\n# 0600 files of random characters written by foobar init; never printed.\nsecrets:\n",
    );
    for s in SECRETS {
        y.push_str(&format!("  {s}: {{ file: secrets/{s} }}\n"));
    }
    y.push_str("\nhosts:\n");
    let mut server_id = 0;
    for h in &all {
        y.push_str(&format!("  {}:\n", h.name));
        if args.ssh_config.is_none() {
            y.push_str(&format!("    address: {}\n", h.ip));
        }
        y.push_str(&format!("    private_ip: {}\n", h.ip));
        if webs.iter().any(|w| w.name == h.name) {
            server_id += 1;
            y.push_str(&format!("    vars: {{ server_id: {server_id} }}\n"));
        }
    }
    let names = |hs: &[Host]| {
        hs.iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let replicas: Vec<&str> = webs
        .iter()
        .map(|w| w.name.as_str())
        .filter(|w| *w != primary)
        .collect();
    y.push_str("\ngroups:\n");
    y.push_str(&format!("  loadbalancer: {{ hosts: [{}] }}\n", names(&lbs)));
    y.push_str(&format!("  web: {{ hosts: [{}] }}\n", names(&webs)));
    y.push_str(&format!("  db_primary: {{ hosts: [{primary}] }}\n"));
    y.push_str(&format!(
        "  db_replica: {{ hosts: [{}] }}\n",
        replicas.join(", ")
    ));
    y.push_str("  databases: { children: [db_primary, db_replica] }\n");
    y.push_str(&format!(
        "  monitoring: {{ hosts: [{}] }}\n",
        monitoring.join(", ")
    ));

    for s in SECRETS {
        write_new(
            &secrets_dir.join(s),
            &format!("{}\n", random_secret()),
            0o600,
        )?;
    }
    if let Some(schema) = &schema {
        let json = serde_json::to_string_pretty(&schema.json_schema()).expect("JSON of a schema");
        write_new(
            &dir.join("inventory.schema.json"),
            &format!("{json}\n"),
            0o644,
        )?;
    }
    write_new(&inventory, &y, 0o644)?;
    crate::say!(
        "wrote {} and {} secrets in {} (0600)\nnext: foobar plan -i {}\n",
        inventory.display(),
        SECRETS.len(),
        secrets_dir.display(),
        inventory.display()
    );
    Ok(ExitCategory::Ok)
}
