//! `verify --watch`: run the checks every interval over the same open transports (the SSH
//! masters stay up, so a round costs one remote command per host and the heartbeat) and print
//! only what changed, each line stamped with the time, until interrupted.
//!
//! In: a [`VerifyInput`], the interval, human or JSON lines. Out: the last completed round's
//! [`Health`] (its exit code is the command's). A check is known by its host, its name and
//! its position among that host's checks of the same name (`service` #0 is the first declared
//! service): its state is pass/fail, so a changing detail (heartbeat seconds) is no change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{Health, VerifyInput, verify};
use crate::inventory::HostName;

/// Where a check sits: host, check name, and its index among the host's checks of that name.
type Key = (HostName, &'static str, usize);

/// One change of state, as printed (one JSON object per line with `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateChange {
    pub format_version: u32,
    /// RFC 3339, UTC.
    pub time: String,
    pub host: HostName,
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

fn states(h: &Health) -> BTreeMap<Key, (bool, String, Option<String>)> {
    let mut out = BTreeMap::new();
    for (host, hh) in &h.hosts {
        let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
        for c in &hh.checks {
            let n = seen.entry(c.name).or_default();
            out.insert(
                (host.clone(), c.name, *n),
                (c.ok, c.detail.clone(), c.hint.clone()),
            );
            *n += 1;
        }
    }
    out
}

/// What changed from `before` to `now`. With no `before` (the first round), every failing
/// check is a change. A failing check that is no longer reported (its host answered again,
/// so `reachable` is gone) counts as recovered.
pub fn changes(before: Option<&Health>, now: &Health, time: &str) -> Vec<StateChange> {
    let now_states = states(now);
    let before_states = before.map(states).unwrap_or_default();
    let change =
        |(host, check, _): &Key, ok: bool, detail: String, hint: Option<String>| StateChange {
            format_version: crate::plan::FORMAT_VERSION,
            time: time.to_string(),
            host: host.clone(),
            check,
            ok,
            detail,
            hint,
        };
    let mut out = Vec::new();
    for (key, (ok, detail, hint)) in &now_states {
        let was = before_states.get(key).map(|s| s.0);
        let changed = match was {
            Some(was) => was != *ok,
            None => !ok,
        };
        if changed {
            out.push(change(key, *ok, detail.clone(), hint.clone()));
        }
    }
    for (key, (ok, detail, _)) in &before_states {
        if !ok && !now_states.contains_key(key) {
            out.push(change(
                key,
                true,
                format!("no longer failing (not reported this round; was: {detail})"),
                None,
            ));
        }
    }
    out
}

/// One line of human output.
pub fn human_line(c: &StateChange) -> String {
    let state = if c.ok { "ok  " } else { "FAIL" };
    let mut line = format!("{}  {}  {state} {}  {}", c.time, c.host, c.check, c.detail);
    if let Some(h) = &c.hint {
        line.push_str(&format!("  (hint: {h})"));
    }
    line
}

/// Now, as RFC 3339 in UTC to the second (`2026-01-01T12:00:00Z`).
fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// Run rounds until interrupted; print each change as it is seen (stdout is flushed per
/// round, so a pipe reads lines as they happen). Returns the last completed round's health.
pub async fn watch(input: &VerifyInput<'_>, interval: Duration, json: bool) -> Option<Health> {
    let stop = interrupted();
    tokio::pin!(stop);
    let mut last: Option<Health> = None;
    let mut round = 0u64;
    loop {
        let health = tokio::select! {
            h = verify(input) => h,
            _ = &mut stop => break,
        };
        round += 1;
        let found = changes(last.as_ref(), &health, &now_rfc3339());
        // One write through the Redactor (`say!`), like everything foobar prints.
        let mut out = String::new();
        for c in &found {
            let line = if json {
                serde_json::to_string(c).unwrap_or_default()
            } else {
                human_line(c)
            };
            out.push_str(&line);
            out.push('\n');
        }
        crate::say!("{out}");
        if crate::secret::stdout_closed() {
            break;
        }
        if round == 1 {
            let checks: usize = health.hosts.values().map(|h| h.checks.len()).sum();
            crate::warn!(
                "watching {checks} checks on {} hosts every {} s ({}); Ctrl-C to stop\n",
                health.hosts.len(),
                interval.as_secs_f64(),
                if health.healthy() {
                    "all passing"
                } else {
                    "some failing, printed above"
                }
            );
        }
        last = Some(health);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {},
            _ = &mut stop => break,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::Check;
    use crate::verify::HostHealth;

    #[test]
    fn now_is_rfc3339_in_utc_to_the_second() {
        let now = now_rfc3339();
        let parsed: jiff::Timestamp = now.parse().expect("RFC 3339");
        assert_eq!(parsed.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), now);
        assert_eq!(now.len(), "2026-01-01T12:00:00Z".len(), "{now}");
    }

    fn health(checks: &[(&str, Check)]) -> Health {
        let mut hosts: BTreeMap<HostName, HostHealth> = BTreeMap::new();
        for (h, c) in checks {
            hosts
                .entry(HostName::new(*h))
                .or_insert(HostHealth { checks: vec![] })
                .checks
                .push(c.clone());
        }
        Health {
            format_version: 1,
            hosts,
        }
    }

    #[test]
    fn only_changes_of_state_are_reported() {
        let t = "2026-01-01T00:00:00Z";
        let healthy = health(&[
            ("web-01", Check::pass("service", "foobar-app is active")),
            ("web-01", Check::pass("service", "nginx is active")),
            ("web-02", Check::pass("heartbeat", "read after 0.1 s")),
        ]);
        // First round: nothing failing, nothing to say.
        assert!(changes(None, &healthy, t).is_empty());
        // A different detail on a passing check is no change.
        let same = health(&[
            ("web-01", Check::pass("service", "foobar-app is active")),
            ("web-01", Check::pass("service", "nginx is active")),
            ("web-02", Check::pass("heartbeat", "read after 0.3 s")),
        ]);
        assert!(changes(Some(&healthy), &same, t).is_empty());
        // Nginx stops: one line, for the second service of web-01.
        let down = health(&[
            ("web-01", Check::pass("service", "foobar-app is active")),
            (
                "web-01",
                Check::fail("service", "nginx is inactive", "run apply"),
            ),
            ("web-02", Check::pass("heartbeat", "read after 0.3 s")),
        ]);
        let c = changes(Some(&same), &down, t);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            human_line(&c[0]),
            "2026-01-01T00:00:00Z  web-01  FAIL service  nginx is inactive  (hint: run apply)"
        );
        assert!(changes(Some(&down), &down, t).is_empty());
        let back = changes(Some(&down), &same, t);
        assert_eq!(back.len(), 1);
        assert!(back[0].ok);
        assert_eq!(
            serde_json::to_string(&back[0]).unwrap(),
            r#"{"format_version":1,"time":"2026-01-01T00:00:00Z","host":"web-01","check":"service","ok":true,"detail":"nginx is active"}"#
        );
    }

    #[test]
    fn an_unreachable_host_that_answers_again_is_a_recovery() {
        let t = "2026-01-01T00:00:00Z";
        let gone = health(&[(
            "web-02",
            Check::fail("reachable", "connection refused", "check ssh"),
        )]);
        let c = changes(None, &gone, t);
        assert_eq!(c.len(), 1);
        assert!(!c[0].ok);
        let back = health(&[("web-02", Check::pass("service", "nginx is active"))]);
        let c = changes(Some(&gone), &back, t);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].ok);
        assert_eq!(c[0].check, "reachable");
    }
}
