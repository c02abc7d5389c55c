//! Wiring the stages together for each command.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;

use super::{Cli, Command, Common};
use crate::apply::database::{self, DatabaseConfig};
use crate::apply::{self, ApplyOptions, Target};
use crate::error::{Diagnostic, ExitCategory, Location};
use crate::gather;
use crate::inventory::{self, HostName, Inventory, InventoryError, Playbook, Secrets};
use crate::plan::{self, Plan};
use crate::render::{DesiredState, RenderContext, RenderError};
use crate::report::{Event, Progress, Reporter, human};
use crate::transport::{self, Transport};

/// Everything that ends a command with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{message}")]
    Usage { message: String, hint: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn location(&self) -> Option<&Location> {
        match self {
            CliError::Inventory(e) => e.location(),
            CliError::Render(e) => e.location(),
            _ => None,
        }
    }
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::Inventory(e) => e.hint(),
            CliError::Render(e) => e.hint(),
            CliError::Usage { hint, .. } => Some(hint.clone()),
            CliError::Other(_) => None,
        }
    }
}

struct Loaded {
    inventory: Inventory,
    playbook: Playbook,
    secrets: Secrets,
    /// Hosts selected by --limit that some play targets, in name order.
    hosts: Vec<HostName>,
    /// The database tier, when a play has `database:`.
    database: Option<Arc<DatabaseConfig>>,
}

fn load(common: &Common) -> Result<Loaded, CliError> {
    let inventory = inventory::load_inventory(&common.inventory)?;
    let playbook = inventory::load_playbook(&common.playbook, &inventory)?;
    let selected = inventory.limit(&common.limit)?;
    let secrets = inventory::resolve_secrets(&inventory)?;
    let hosts = selected
        .into_iter()
        .filter(|h| playbook.plays.iter().any(|p| p.hosts.contains(h)))
        .collect();
    let database = if playbook.plays.iter().any(|p| p.database.is_some()) {
        database::config(&inventory, &secrets)?.map(Arc::new)
    } else {
        None
    };
    Ok(Loaded {
        inventory,
        playbook,
        secrets,
        hosts,
        database,
    })
}

fn render_all(
    ctx: &RenderContext<'_>,
    hosts: &[HostName],
) -> Result<BTreeMap<HostName, DesiredState>, CliError> {
    let mut out = BTreeMap::new();
    for h in hosts {
        out.insert(h.clone(), ctx.render_host(h)?);
    }
    Ok(out)
}

fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Open a transport per host, in parallel. Failures are per host, not fatal.
async fn connect_all(
    inventory: &Inventory,
    hosts: &[HostName],
    forks: usize,
    reporter: &dyn Reporter,
) -> (
    BTreeMap<HostName, Arc<dyn Transport>>,
    BTreeMap<HostName, String>,
) {
    let results: Vec<_> = futures::stream::iter(hosts.iter())
        .map(|h| async move {
            reporter.event(Event::HostStarted {
                host: h.clone(),
                what: "connecting",
            });
            let spec = inventory.connection(h);
            (h.clone(), transport::connect(&spec).await)
        })
        .buffer_unordered(forks.max(1))
        .collect()
        .await;
    let mut ok = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for (h, r) in results {
        match r {
            Ok(t) => {
                ok.insert(h, Arc::from(t));
            }
            Err(e) => {
                reporter.event(Event::HostFailed {
                    host: h.clone(),
                    message: e.to_string(),
                });
                failed.insert(h, e.to_string());
            }
        }
    }
    (ok, failed)
}

/// Gather every host and diff it against its desired state.
#[allow(clippy::too_many_arguments)]
async fn make_plan(
    loaded: &Loaded,
    ctx: &RenderContext<'_>,
    desired: &BTreeMap<HostName, DesiredState>,
    transports: &BTreeMap<HostName, Arc<dyn Transport>>,
    primary: Option<&Arc<dyn Transport>>,
    mut failed: BTreeMap<HostName, String>,
    forks: usize,
    reporter: &dyn Reporter,
    // For an apply: the lock script to run on hosts with changes, and the run's id.
    lock: Option<(&str, &str)>,
) -> Plan {
    let timeout = Duration::from_secs(loaded.inventory.ssh.command_timeout.min(120));
    let facts_sql = loaded.database.as_ref().map(|c| c.facts_sql());
    let facts_sql = facts_sql.as_deref();
    let results: Vec<_> = futures::stream::iter(transports.iter())
        .map(|(h, t)| async move {
            let want = &desired[h];
            let before = t.commands_run();
            let r = async {
                let probe = want
                    .plays
                    .iter()
                    .any(|p| p.database.is_some())
                    .then_some(())
                    .and(facts_sql)
                    .map(|sql| gather::DatabaseProbe { sql });
                let have = gather::gather(t.as_ref(), want, probe.as_ref(), timeout).await?;
                let mut hp = plan::diff(want, &have);
                let need: Vec<&str> = hp
                    .changes
                    .iter()
                    .filter(|c| c.needs_diff)
                    .map(|c| c.target.as_str())
                    .collect();
                match lock {
                    // An apply locks a host with changes in the round trip that fetches the
                    // bodies for its diff, and reads it again under the lock: it changes
                    // exactly what this plan shows, with no lock-and-re-read later.
                    Some((lock, run_id)) if hp.has_changes() => {
                        let (locked, again, bodies) =
                            gather::lock_gather_fetch(t.as_ref(), want, timeout, lock, &need)
                                .await?;
                        if !locked {
                            return Ok(Err(apply::lock_message(
                                again.lock.as_deref().unwrap_or("unknown holder"),
                            )));
                        }
                        if again.digest != have.digest {
                            apply::unlock(t.as_ref(), run_id).await;
                            return Ok(Err(
                                "the host changed while it was being planned; run again".into(),
                            ));
                        }
                        hp.locked = true;
                        if !need.is_empty() {
                            plan::attach_diffs(&mut hp, want, &bodies, &ctx.redactor);
                        }
                    }
                    _ if !need.is_empty() => {
                        let bodies = gather::fetch_contents(t.as_ref(), &need, timeout).await?;
                        plan::attach_diffs(&mut hp, want, &bodies, &ctx.redactor);
                    }
                    _ => {}
                }
                Ok::<_, gather::GatherError>(Ok((hp, have.database)))
            }
            .await;
            let n = t.commands_run() - before;
            reporter.event(Event::HostGathered {
                host: h.clone(),
                commands: n,
            });
            (
                h.clone(),
                r.map(|r| {
                    r.map(|(mut hp, db)| {
                        hp.remote_commands = n;
                        (hp, db)
                    })
                }),
            )
        })
        .buffer_unordered(forks.max(1))
        .collect()
        .await;
    let mut hosts = BTreeMap::new();
    let mut db_facts = BTreeMap::new();
    for (h, r) in results {
        match r {
            Ok(Err(why)) => {
                failed.insert(h, why);
            }
            Ok(Ok((hp, db))) => {
                if let Some(text) = db {
                    db_facts.insert(h.clone(), database::parse_probe(&text));
                }
                hosts.insert(h, hp);
            }
            Err(e) => {
                failed.insert(h, ctx.redactor.redact(&e.to_string()));
            }
        }
    }
    if let Some(cfg) = &loaded.database {
        // A replica's plan depends on its primary's facts (seeding): read them if --limit
        // left the primary out.
        if !db_facts.contains_key(&cfg.primary)
            && let Some(t) = primary
        {
            let want = &desired_for_probe(&cfg.primary);
            let probe = gather::DatabaseProbe {
                sql: facts_sql.unwrap_or_default(),
            };
            if let Ok(have) = gather::gather(t.as_ref(), want, Some(&probe), timeout).await
                && let Some(text) = have.database
            {
                db_facts.insert(cfg.primary.clone(), database::parse_probe(&text));
            }
        }
        let primary_facts = db_facts
            .get(&cfg.primary)
            .and_then(|r| r.as_ref().ok())
            .and_then(|f| f.as_ref());
        for (h, hp) in hosts.iter_mut() {
            for play in desired[h].plays.iter() {
                let Some(role) = play.database else { continue };
                let facts = match db_facts.get(h) {
                    Some(Ok(f)) => f.as_ref(),
                    Some(Err(e)) => {
                        failed.insert(h.clone(), ctx.redactor.redact(e));
                        continue;
                    }
                    None => None,
                };
                match database::plan_changes(role, play.index, cfg, facts, primary_facts) {
                    Ok(changes) => hp.changes.extend(changes),
                    Err(e) => {
                        failed.insert(h.clone(), ctx.redactor.redact(&e));
                    }
                }
            }
        }
        hosts.retain(|h, _| !failed.contains_key(h));
    }
    Plan {
        format_version: plan::FORMAT_VERSION,
        inventory: loaded.inventory.path.display().to_string(),
        playbook: loaded.playbook.path.display().to_string(),
        rollout: rollout(loaded, desired, &hosts),
        hosts,
        failed,
    }
}

/// The rollout order of plays with `serial:` over the load balancer's `web` hosts.
fn rollout(
    loaded: &Loaded,
    desired: &BTreeMap<HostName, DesiredState>,
    hosts: &BTreeMap<HostName, plan::HostPlan>,
) -> Vec<String> {
    let inv = &loaded.inventory;
    let (Some(lb), Some(web)) = (
        inv.groups.get("loadbalancer").and_then(|g| g.hosts.first()),
        inv.groups.get("web"),
    ) else {
        return vec![];
    };
    let mut out = Vec::new();
    for play in &loaded.playbook.plays {
        let Some(n) = play.serial.filter(|n| *n > 0) else {
            continue;
        };
        let order: Vec<&str> = web
            .hosts
            .iter()
            .filter(|h| {
                desired
                    .get(*h)
                    .is_some_and(|d| d.plays.iter().any(|p| p.index == play.index))
            })
            .filter(|h| {
                hosts.get(*h).is_some_and(|hp| {
                    hp.changes
                        .iter()
                        .any(|c| c.play == play.index && c.is_change())
                        || hp.handlers.iter().any(|x| x.play == play.index)
                })
            })
            .map(|h| h.as_str())
            .collect();
        if !order.is_empty() {
            out.push(format!(
                "play `{}` changes {} at a time: {} — each drained on {lb}, checked directly, then put back (`--serial 0`: all at once)",
                play.name,
                n,
                order.join(", then ")
            ));
        }
    }
    out
}

/// HAProxy on the first host of group `loadbalancer`, for rolling plays: its transport (the
/// run's own, or a new one when `--limit` left it out), admin socket, and each `web` host's
/// Nginx address for the health gate.
async fn balancer(
    loaded: &Loaded,
    transports: &BTreeMap<HostName, Arc<dyn Transport>>,
) -> Option<crate::apply::rolling::Balancer> {
    let inv = &loaded.inventory;
    let lb = inv.groups.get("loadbalancer")?.hosts.first()?.clone();
    let transport = match transports.get(&lb) {
        Some(t) => t.clone(),
        None => Arc::from(transport::connect(&inv.connection(&lb)).await.ok()?),
    };
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
    Some(crate::apply::rolling::Balancer {
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
async fn mark_out_of_rotation(
    plan: &mut Plan,
    balancer: Option<&crate::apply::rolling::Balancer>,
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
                plan::ChangeKind::Rotation,
                format!("{}/{host} on {}", b.backend, b.host),
                plan::Action::Start,
                vec![
                    "in maintenance since an earlier rollout; back once its health gate passes"
                        .into(),
                ],
            ));
        }
    }
}

/// An empty desired state: gathering it reads only the lock, pending handlers and, with a
/// probe, the database facts.
fn desired_for_probe(host: &HostName) -> DesiredState {
    DesiredState {
        host: host.clone(),
        plays: vec![],
    }
}

/// The database primary's transport, when a selected host is in a database play: a replica
/// is planned and seeded against it even when `--limit` leaves the primary out.
async fn connect_primary(
    loaded: &Loaded,
    transports: &BTreeMap<HostName, Arc<dyn Transport>>,
) -> Option<Arc<dyn Transport>> {
    let cfg = loaded.database.as_ref()?;
    if let Some(t) = transports.get(&cfg.primary) {
        return Some(t.clone());
    }
    let wanted = loaded
        .playbook
        .plays
        .iter()
        .any(|p| p.database.is_some() && p.hosts.iter().any(|h| loaded.hosts.contains(h)));
    if !wanted {
        return None;
    }
    let spec = loaded.inventory.connection(&cfg.primary);
    transport::connect(&spec).await.ok().map(Arc::from)
}

async fn finish_all(transports: &BTreeMap<HostName, Arc<dyn Transport>>) {
    futures::future::join_all(transports.values().map(|t| t.finish())).await;
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?;
    println!("{text}");
    Ok(())
}

fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, secs) = ((now / 86400) as i64, now % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        std::process::id()
    )
}

fn confirm() -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage {
            message: "refusing to apply without confirmation: stdin is not a terminal".into(),
            hint: "review the plan, then run again with --yes".into(),
        });
    }
    eprint!("Apply these changes? Only 'yes' is accepted: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(anyhow::Error::from)?;
    Ok(line.trim() == "yes")
}

/// Ctrl-C or SIGTERM: start no new step; running ones finish.
fn watch_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        eprintln!("foobar: interrupted; letting running steps finish, starting no new ones");
        f.store(true, Ordering::SeqCst);
    });
    flag
}

pub async fn run(cli: Cli) -> Result<ExitCategory, CliError> {
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "foobar", &mut std::io::stdout());
            Ok(ExitCategory::Ok)
        }
        Command::Render { common, out } => {
            let loaded = load(&common)?;
            let ctx = RenderContext::new(&loaded.inventory, &loaded.playbook, &loaded.secrets)?;
            let desired = render_all(&ctx, &loaded.hosts)?;
            let mut written = 0;
            for (host, state) in &desired {
                for e in state.entries() {
                    if let crate::render::EntryKind::File { content, .. } = &e.kind {
                        let text = ctx.redactor.redact(&String::from_utf8_lossy(content));
                        write_rendered(&out, host, &e.path, text.as_bytes())?;
                        written += 1;
                    }
                }
                if state
                    .plays
                    .iter()
                    .any(|p| p.database == Some(inventory::DatabaseRole::Replica))
                    && let Some(cfg) = &loaded.database
                {
                    let sql = database::configured_replication_sql(
                        cfg,
                        &loaded.inventory.host_vars(host),
                    )
                    .map_err(|message| CliError::Usage {
                        message,
                        hint: "check `flavor` and `mysql_version` in the inventory".into(),
                    })?;
                    write_rendered(&out, host, "/foobar/replication.sql", sql.as_bytes())?;
                    written += 1;
                }
            }
            eprintln!(
                "rendered {written} files for {} hosts into {}",
                desired.len(),
                out.display()
            );
            Ok(ExitCategory::Ok)
        }
        Command::Plan {
            common,
            detailed_exitcode,
            out,
            show_unchanged,
        } => {
            let loaded = load(&common)?;
            let ctx = RenderContext::new(&loaded.inventory, &loaded.playbook, &loaded.secrets)?;
            let desired = render_all(&ctx, &loaded.hosts)?;
            let reporter = Progress::new(common.verbose);
            let (transports, failed) =
                connect_all(&loaded.inventory, &loaded.hosts, common.forks, &reporter).await;
            let primary = connect_primary(&loaded, &transports).await;
            let plan = make_plan(
                &loaded,
                &ctx,
                &desired,
                &transports,
                primary.as_ref(),
                failed,
                common.forks,
                &reporter,
                None,
            )
            .await;
            let mut plan = plan;
            if desired
                .values()
                .any(|d| d.plays.iter().any(|p| p.serial.is_some()))
            {
                let b = balancer(&loaded, &transports).await;
                mark_out_of_rotation(&mut plan, b.as_ref(), &desired).await;
            }
            finish_all(&transports).await;
            reporter.finish();
            if let Some(path) = &out {
                let text = serde_json::to_string_pretty(&plan).map_err(anyhow::Error::from)?;
                std::fs::write(path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                eprintln!(
                    "plan saved to {}; apply it with `foobar apply {}`",
                    path.display(),
                    path.display()
                );
            }
            if common.json {
                print_json(&plan)?;
            } else {
                print!(
                    "{}",
                    human::plan(&plan, &human::Styles::new(colour()), show_unchanged)
                );
            }
            Ok(if !plan.failed.is_empty() {
                ExitCategory::HostFailed
            } else if detailed_exitcode && plan.has_changes() {
                ExitCategory::ChangesPresent
            } else {
                ExitCategory::Ok
            })
        }
        Command::Apply {
            common,
            planfile,
            yes,
            dry_run,
            diff,
            break_lock,
            max_fail_percentage,
            serial,
        } => {
            let loaded = load(&common)?;
            let ctx = RenderContext::new(&loaded.inventory, &loaded.playbook, &loaded.secrets)?;
            let cancelled = watch_signals();
            let saved: Option<Plan> = match &planfile {
                Some(p) => Some(read_planfile(p)?),
                None => None,
            };
            let hosts: Vec<HostName> = match &saved {
                Some(s) => loaded
                    .hosts
                    .iter()
                    .filter(|h| s.hosts.contains_key(*h))
                    .cloned()
                    .collect(),
                None => loaded.hosts.clone(),
            };
            let desired = render_all(&ctx, &hosts)?;
            let reporter = Progress::new(common.verbose);
            let (transports, failed) =
                connect_all(&loaded.inventory, &hosts, common.forks, &reporter).await;
            let primary = connect_primary(&loaded, &transports).await;
            let run_id = run_id();
            let holder = format!(
                "{}@{} pid {} since {}",
                std::env::var("USER").unwrap_or_else(|_| "root".into()),
                apply::machine_name(),
                std::process::id(),
                run_id.split('-').next().unwrap_or("")
            );
            // Without a saved plan, hosts with changes are locked while they are planned.
            let lock_script = (planfile.is_none() && !dry_run).then(|| {
                apply::script::lock_script(&apply::lock_holder(&holder, &run_id), break_lock)
            });
            let plan = match saved {
                Some(s) => {
                    check_saved_plan(&s, &desired)?;
                    let mut s = s;
                    s.hosts.retain(|h, _| transports.contains_key(h));
                    s.failed.extend(failed);
                    s
                }
                None => {
                    make_plan(
                        &loaded,
                        &ctx,
                        &desired,
                        &transports,
                        primary.as_ref(),
                        failed,
                        common.forks,
                        &reporter,
                        lock_script.as_deref().map(|l| (l, run_id.as_str())),
                    )
                    .await
                }
            };
            // Hosts this run locked while planning, to release if it goes no further.
            let locked: Vec<Arc<dyn Transport>> = plan
                .hosts
                .iter()
                .filter(|(_, hp)| hp.locked)
                .filter_map(|(h, _)| transports.get(h).cloned())
                .collect();
            let balancer = if serial == Some(0)
                || !desired
                    .values()
                    .any(|d| d.plays.iter().any(|p| p.serial.is_some()))
            {
                None
            } else {
                balancer(&loaded, &transports).await
            };
            let mut plan = plan;
            if planfile.is_none() {
                mark_out_of_rotation(&mut plan, balancer.as_ref(), &desired).await;
            }
            reporter.finish();
            let styles = human::Styles::new(colour());
            if !common.json && (diff || planfile.is_none()) {
                print!("{}", human::plan(&plan, &styles, false));
            }
            if !plan.has_changes() {
                finish_all(&transports).await;
                if common.json {
                    print_json(
                        &serde_json::json!({"format_version": plan::FORMAT_VERSION, "plan": plan, "report": null}),
                    )?;
                }
                return Ok(if plan.failed.is_empty() {
                    ExitCategory::Ok
                } else {
                    ExitCategory::HostFailed
                });
            }
            let go = yes || dry_run || {
                let answer = confirm();
                if !matches!(answer, Ok(true)) {
                    for t in &locked {
                        apply::unlock(t.as_ref(), &run_id).await;
                    }
                    finish_all(&transports).await;
                }
                answer?
            };
            if !go {
                eprintln!("nothing applied");
                return Ok(ExitCategory::Error);
            }
            let targets: BTreeMap<HostName, Target<'_>> = transports
                .iter()
                .filter(|(h, _)| plan.hosts.contains_key(*h))
                .map(|(h, t)| {
                    (
                        h.clone(),
                        Target {
                            transport: t.clone(),
                            desired: &desired[h],
                            database: loaded.database.clone(),
                            primary: primary.clone(),
                        },
                    )
                })
                .collect();
            let options = ApplyOptions {
                dry_run,
                forks: common.forks,
                timeout: Duration::from_secs(loaded.inventory.ssh.command_timeout),
                break_lock,
                run_id,
                holder,
                max_fail_percentage,
                serial,
            };
            let report = apply::apply(
                &plan,
                &targets,
                &options,
                balancer.as_ref(),
                &reporter,
                &ctx.redactor,
                &cancelled,
            )
            .await;
            reporter.finish();
            finish_all(&transports).await;
            let mut report = report;
            for (h, why) in &plan.failed {
                report.hosts.insert(
                    h.clone(),
                    apply::HostReport {
                        status: apply::HostStatus::Failed {
                            stage: "connect".into(),
                            message: why.clone(),
                        },
                        ..apply::HostReport::new()
                    },
                );
            }
            if common.json {
                print_json(
                    &serde_json::json!({"format_version": plan::FORMAT_VERSION, "plan": plan, "report": report}),
                )?;
            } else {
                print!("{}", human::report(&report, &styles));
            }
            Ok(if report.failed_hosts().is_empty() && !report.interrupted {
                ExitCategory::Ok
            } else {
                ExitCategory::HostFailed
            })
        }
        Command::Verify {
            common,
            max_lag,
            settle,
        } => {
            let loaded = load(&common)?;
            let ctx = RenderContext::new(&loaded.inventory, &loaded.playbook, &loaded.secrets)?;
            let desired = render_all(&ctx, &loaded.hosts)?;
            let reporter = Progress::new(common.verbose);
            let (transports, unreachable) =
                connect_all(&loaded.inventory, &loaded.hosts, common.forks, &reporter).await;
            let health = crate::verify::verify(&crate::verify::VerifyInput {
                inventory: &loaded.inventory,
                desired: &desired,
                transports: &transports,
                unreachable: &unreachable,
                database: loaded.database.as_deref(),
                max_lag,
                timeout: Duration::from_secs(loaded.inventory.ssh.command_timeout.min(120)),
                settle: Duration::from_secs(settle),
            })
            .await;
            finish_all(&transports).await;
            reporter.finish();
            if common.json {
                print_json(&health)?;
            } else {
                let order = |h: &HostName| {
                    if loaded.inventory.in_group(h, "db_replica") {
                        0
                    } else if loaded.inventory.in_group(h, "db_primary") {
                        1
                    } else {
                        2
                    }
                };
                print!(
                    "{}",
                    human::health(&health, &human::Styles::new(colour()), order)
                );
            }
            Ok(if health.healthy() {
                ExitCategory::Ok
            } else {
                ExitCategory::HostFailed
            })
        }
    }
}

fn write_rendered(out: &Path, host: &HostName, path: &str, bytes: &[u8]) -> Result<(), CliError> {
    let dest = out.join(host.as_str()).join(path.trim_start_matches('/'));
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&dest, bytes)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dest.display()))?;
    Ok(())
}

fn read_planfile(path: &Path) -> Result<Plan, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage {
        message: format!("cannot read plan {}: {e}", path.display()),
        hint: "save one with `foobar plan --out FILE`".into(),
    })?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| CliError::Usage {
        message: format!("{} is not a foobar plan: {e}", path.display()),
        hint: "save one with `foobar plan --out FILE`".into(),
    })?;
    if plan.format_version != plan::FORMAT_VERSION {
        return Err(CliError::Usage {
            message: format!(
                "{} has plan format {}, this foobar reads {}",
                path.display(),
                plan.format_version,
                plan::FORMAT_VERSION
            ),
            hint: "make the plan again with this version of foobar".into(),
        });
    }
    Ok(plan)
}

/// A saved plan applies only if the templates and inventory still render what it planned.
fn check_saved_plan(
    plan: &Plan,
    desired: &BTreeMap<HostName, DesiredState>,
) -> Result<(), CliError> {
    for (host, hp) in &plan.hosts {
        let Some(want) = desired.get(host) else {
            continue;
        };
        for c in hp.changes.iter().filter(|c| c.desired_digest.is_some()) {
            let now = want
                .entries()
                .find(|e| e.path == c.target)
                .and_then(|e| match &e.kind {
                    crate::render::EntryKind::File { digest, .. } => Some(digest.as_str()),
                    _ => None,
                });
            if now != c.desired_digest.as_deref() {
                return Err(CliError::Usage {
                    message: format!(
                        "the saved plan no longer matches the templates or inventory: {} on {host} renders differently now",
                        c.target
                    ),
                    hint: "run `foobar plan --out FILE` again and apply the new plan".into(),
                });
            }
        }
    }
    Ok(())
}
