//! Reading a gather's output back: the `#foobar:` sections into an [`ActualState`], the
//! facts' digest and compare-and-swap fingerprint, and the file frames that follow.
//!
//! In: a host's name (for errors) and the raw stdout of the gather script. Out: an
//! [`ActualState`], or [`GatherError::Parse`] naming the host and what was wrong.

use std::collections::BTreeMap;

use super::{
    ActualState, CLOCK_PATH, FirewallFacts, GatherError, PathFacts, PathType, QuickFacts,
    ServiceFacts,
};
use crate::remote::lock::LOCKED_MARK;
use crate::remote::section::{self, Line, Section};

/// One `stat` line: `type, mode, owner, group, size, path, shown, inode and change time`
/// (tab-separated; the last field is split off first, since a live link's target could
/// hold a tab).
fn parse_stat_line(line: &str) -> Option<(String, PathFacts)> {
    let (line, _change) = line.rsplit_once('\t')?;
    let mut parts = line.splitn(7, '\t');
    let kind = parts.next()?;
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    let owner = parts.next()?.to_string();
    let group = parts.next()?.to_string();
    let size = parts.next()?.parse().ok()?;
    // Paths hold no control characters (checked at load): `%n` is the path as it is, and
    // `%N` is `path -> target` for a link, in `escape` quoting (read back here).
    let path = parts.next()?.to_string();
    let shown = unescape(parts.next()?);
    let shown = shown.as_str();
    let target = shown
        .strip_prefix(path.as_str())
        .and_then(|rest| rest.strip_prefix(" -> "))
        .map(String::from);
    let kind = match kind {
        "regular file" | "regular empty file" => PathType::File,
        "directory" => PathType::Directory,
        "symbolic link" => PathType::Link,
        _ => PathType::Other,
    };
    Some((
        path,
        PathFacts {
            kind,
            mode,
            owner,
            group,
            size,
            digest: None,
            link_target: target,
        },
    ))
}

/// `stat`'s `escape` quoting read back (`\\`, C escapes, `\ooo` octal bytes, as GNU's
/// quotearg writes them under `LC_ALL=C`): the name or target exactly, whatever bytes it holds.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let c = bytes[i + 1];
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let Some(d) = octal {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
            continue;
        }
        out.push(match c {
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            c => c,
        });
        i += 2;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A stat line's path and change time (`%z`: `2026-01-01 12:00:00.123456789 +0000`), when
/// both read.
fn stat_change(line: &str) -> Option<(&str, jiff::Timestamp)> {
    let (rest, change) = line.rsplit_once('\t')?;
    let path = rest.split('\t').nth(5)?;
    let (_inode, time) = change.split_once(' ')?;
    let at = jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S%.f %z", time)
        .and_then(|t| t.to_timestamp())
        .ok()?;
    Some((path, at))
}

/// sha256sum's `digest  path` line, its path unescaped (a name holding `\\` or a newline
/// is marked with a leading `\\` and escaped).
fn sha_line(line: &str) -> Option<(&str, String)> {
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (digest, path) = line.split_once("  ")?;
    let path = if escaped {
        path.replace("\\n", "\n").replace("\\\\", "\\")
    } else {
        path.to_string()
    };
    Some((digest, path))
}

/// Whether a stat line is the clock's ([`CLOCK_PATH`]): its path field.
fn clock_line(line: &[u8]) -> bool {
    line.split(|b| *b == b'\t').nth(5) == Some(CLOCK_PATH.as_bytes())
}

/// What a saved plan's check prints ([`super::facts_script`]): the gather's facts without
/// the clock's line.
fn without_clock(facts: &[u8]) -> Vec<u8> {
    facts
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !clock_line(l))
        .flatten()
        .copied()
        .collect()
}

/// The coarsest change-time granularity of a filesystem a managed file may be on (vfat's).
const GRANULARITY: jiff::SignedDuration = jiff::SignedDuration::from_secs(2);

/// The quick check of an apply in the run that gathered these facts ([`QuickFacts`]).
pub(super) fn quick_facts(facts: &str) -> QuickFacts {
    let mut clock = None;
    let mut changed: BTreeMap<&str, jiff::Timestamp> = BTreeMap::new();
    for line in section::lines(facts) {
        if let Line::Body(Some(Section::Stat), line) = line
            && let Some((path, at)) = stat_change(line)
        {
            if path == CLOCK_PATH {
                clock = Some(at);
            } else {
                changed.insert(path, at);
            }
        }
    }
    // Racily clean: changed within GRANULARITY of the clock or later (or either time
    // unknown). The clock (/proc, nanoseconds) is finer than some filesystems' change times:
    // ext4 with 128-byte inodes and ext3 keep whole seconds, vfat two, so a file's change
    // time stands up to that far below the instant it was made, and a rewrite in that same
    // second or two would leave it as it was.
    let vouched = |path: &str| {
        matches!((changed.get(path), clock), (Some(at), Some(c))
            if c.checked_sub(GRANULARITY).is_ok_and(|c| *at < c))
    };
    let (mut text, mut hashed) = (String::new(), Vec::new());
    for (line, raw) in section::lines_raw(facts) {
        match line {
            Line::Body(Some(Section::Stat), bare) if clock_line(bare.as_bytes()) => continue,
            Line::Body(Some(Section::Sha256), bare) => match sha_line(bare) {
                Some((_, path)) if vouched(&path) => continue,
                Some((_, path)) => hashed.push(path),
                None => {}
            },
            _ => {}
        }
        text.push_str(raw);
    }
    QuickFacts { text, hashed }
}

/// One `key value` line of the firewall's facts (`firewall_facts` in sh/firewall.sh).
fn firewall_line(f: &mut FirewallFacts, line: &str) {
    let Some((key, value)) = line.split_once(' ') else {
        return;
    };
    let digest = (value != "none").then(|| value.to_string());
    match key {
        "live" => f.live = digest,
        "confirmed" => f.confirmed = digest,
        "ruleset" => f.ruleset = digest,
        "pending" => f.pending = value == "yes",
        _ => {}
    }
}

/// The firewall's facts from the body of a `firewall-state` section (verify's).
pub fn parse_firewall_facts(body: &str) -> FirewallFacts {
    let mut f = FirewallFacts::default();
    for line in body.lines() {
        firewall_line(&mut f, line);
    }
    f
}

fn unknown(host: &str, name: &str) -> GatherError {
    GatherError::Parse {
        host: host.into(),
        detail: format!("unknown section {name}"),
    }
}

/// Parse the framed output of [`super::gather_script`].
pub fn parse_gather_output(host: &str, text: &str) -> Result<ActualState, GatherError> {
    let mut state = ActualState::default();
    let mut service: Option<(String, ServiceFacts)> = None;
    let mut database = String::new();
    let mut ended = false;
    for line in section::lines(text) {
        let (section, line) = match line {
            Line::Start(
                Section::Stat
                | Section::Sha256
                | Section::Packages
                | Section::Services
                | Section::Pending
                | Section::Lock
                | Section::Database,
            ) => continue,
            Line::Start(Section::FirewallState) => {
                state.firewall = Some(Default::default());
                continue;
            }
            Line::Start(Section::End) => {
                ended = true;
                continue;
            }
            Line::Start(other) => return Err(unknown(host, other.name())),
            Line::Unknown(name) => return Err(unknown(host, name)),
            Line::Body(None, _) => continue,
            Line::Body(Some(section), line) => (section, line),
        };
        match section {
            Section::Stat => {
                let (path, facts) = parse_stat_line(line).ok_or_else(|| GatherError::Parse {
                    host: host.into(),
                    detail: format!("bad stat line: {line}"),
                })?;
                // The clock's line is not a fact (see `CLOCK_PATH`).
                if path != CLOCK_PATH {
                    state.paths.insert(path, facts);
                }
            }
            Section::FirewallState => {
                if let Some(f) = state.firewall.as_mut() {
                    firewall_line(f, line);
                }
            }
            Section::Sha256 => {
                if let Some((digest, path)) = sha_line(line)
                    && let Some(p) = state.paths.get_mut(&path)
                    && p.kind == PathType::File
                {
                    p.digest = Some(digest.to_string());
                }
            }
            Section::Packages => {
                if let Some((name, status)) = line.split_once('\t') {
                    state
                        .packages
                        .insert(name.to_string(), status.starts_with("ii"));
                }
            }
            Section::Services => {
                if line.is_empty() {
                    if let Some((n, f)) = service.take() {
                        state.services.insert(n, f);
                    }
                    continue;
                }
                let (key, value) = line.split_once('=').unwrap_or((line, ""));
                let entry = service.get_or_insert_with(|| {
                    (
                        String::new(),
                        ServiceFacts {
                            active: false,
                            enabled: false,
                            exists: true,
                        },
                    )
                });
                match key {
                    "Id" => entry.0 = value.trim_end_matches(".service").to_string(),
                    "ActiveState" => entry.1.active = value == "active",
                    "UnitFileState" => entry.1.enabled = value == "enabled",
                    "LoadState" => entry.1.exists = value != "not-found",
                    _ => {}
                }
            }
            Section::Pending => {
                if let Some((play, name)) = line.split_once('\t')
                    && let Ok(play) = play.parse()
                {
                    let item = (play, name.to_string());
                    if !state.pending_handlers.contains(&item) {
                        state.pending_handlers.push(item);
                    }
                }
            }
            Section::Lock => {
                let l = state.lock.get_or_insert_with(String::new);
                if !l.is_empty() {
                    l.push_str(", ");
                }
                l.push_str(line);
            }
            Section::Database => {
                database.push_str(line);
                database.push('\n');
            }
            _ => {}
        }
    }
    if let Some((n, f)) = service.take() {
        state.services.insert(n, f);
    }
    if !ended {
        return Err(GatherError::Parse {
            host: host.into(),
            detail: "the output ended early".into(),
        });
    }
    if !database.is_empty() {
        state.database = Some(database);
    }
    state.digest = facts_digest(&state);
    Ok(state)
}

/// The fingerprint a saved plan carries: everything a plan depends on, not who holds the lock.
pub fn facts_digest(state: &ActualState) -> String {
    let mut copy = state.clone();
    copy.lock = None;
    copy.digest = String::new();
    // Replication lag and positions move on their own; the database section is re-checked
    // by the database step itself.
    copy.database = None;
    let json = serde_json::to_vec(&copy).expect("facts serialise");
    crate::render::sha256_hex(&json)
}

/// Split a gather's output: an optional `#foobar:locked` line, the framed facts up to
/// `#foobar:end`, then file frames. Computes the facts' digest and [`ActualState::cas`].
pub fn parse_output(host: &str, stdout: &[u8]) -> Result<(bool, ActualState), GatherError> {
    let locked = stdout.starts_with(LOCKED_MARK.as_bytes());
    let text = if locked {
        &stdout[LOCKED_MARK.len()..]
    } else {
        stdout
    };
    let end = Section::End.line().as_bytes();
    let split = find_line(text, end)
        .map(|i| i + end.len())
        .ok_or_else(|| GatherError::Parse {
            host: host.to_string(),
            detail: "the output ended early".into(),
        })?;
    let mut state = parse_gather_output(host, &String::from_utf8_lossy(&text[..split]))?;
    // The facts part ends where the lock section starts.
    let facts_end = find_line(text, Section::Lock.line().as_bytes()).unwrap_or(0);
    // What a check under the lock prints: the facts without the clock's line; the quick
    // check only when they are text a shell word can hold.
    let facts = &text[..facts_end];
    state.cas = crate::render::sha256_hex(&without_clock(facts));
    state.cas_quick = std::str::from_utf8(facts)
        .ok()
        .filter(|t| !t.contains('\0'))
        .map(|t| std::sync::Arc::new(quick_facts(t)));
    // Bodies are for diffs only, and a file may change between its stat and its read: a
    // body section that does not parse, or a body whose digest is not the one just read, is
    // dropped (the plan then reads it in a command of its own).
    let mut bodies = parse_frames(host, &text[split..]).unwrap_or_default();
    bodies.retain(|path, body| {
        state
            .paths
            .get(path)
            .and_then(|p| p.digest.as_deref())
            .is_some_and(|d| d == crate::render::sha256_hex(body))
    });
    state.bodies = bodies;
    Ok((locked, state))
}

/// Where `line` (ending in a newline) starts a line of `text`.
fn find_line(text: &[u8], line: &[u8]) -> Option<usize> {
    if text.starts_with(line) {
        return Some(0);
    }
    text.windows(line.len() + 1)
        .position(|w| w[0] == b'\n' && &w[1..] == line)
        .map(|i| i + 1)
}

/// `path<TAB>length<LF>` then that many bytes, for each file.
pub(super) fn parse_frames(
    host: &str,
    data: &[u8],
) -> Result<BTreeMap<String, Vec<u8>>, GatherError> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < data.len() {
        let nl = data[i..]
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| GatherError::Parse {
                host: host.to_string(),
                detail: "truncated file frame".into(),
            })?;
        let header = String::from_utf8_lossy(&data[i..i + nl]).into_owned();
        let (path, len) = header.rsplit_once('\t').ok_or_else(|| GatherError::Parse {
            host: host.to_string(),
            detail: format!("bad file frame header {header:?}"),
        })?;
        let len: usize = len.trim().parse().map_err(|_| GatherError::Parse {
            host: host.to_string(),
            detail: format!("bad length in {header:?}"),
        })?;
        let start = i + nl + 1;
        let end = (start + len).min(data.len());
        out.insert(path.to_string(), data[start..end].to_vec());
        i = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_framed_output() {
        let text = "#foobar:stat\n\
regular file\t644\troot\troot\t12\t/etc/a.cfg\t/etc/a.cfg\t5 2026-01-01 12:00:00.000000000 +0000\n\
symbolic link\t777\troot\troot\t20\t/etc/l\t/etc/l -> /etc/a.cfg\t5 2026-01-01 12:00:00.000000000 +0000\n\
directory\t2775\thaproxy\thaproxy\t40\t/run/haproxy\t/run/haproxy\t5 2026-01-01 12:00:00.000000000 +0000\n\
#foobar:sha256\n\
abc123  /etc/a.cfg\n\
#foobar:packages\n\
nginx\tii \n\
haproxy\tun \n\
#foobar:services\n\
Id=nginx.service\nActiveState=active\nUnitFileState=enabled\nLoadState=loaded\n\n\
Id=haproxy.service\nActiveState=inactive\nUnitFileState=disabled\nLoadState=loaded\n\
#foobar:pending\n\
2\treload nginx\n\
#foobar:lock\n\
alice@laptop pid 42\n\
#foobar:end\n";
        let s = parse_gather_output("h", text).unwrap();
        assert_eq!(s.paths["/etc/a.cfg"].digest.as_deref(), Some("abc123"));
        assert_eq!(s.paths["/etc/a.cfg"].mode, 0o644);
        assert_eq!(s.paths["/etc/l"].link_target.as_deref(), Some("/etc/a.cfg"));
        assert_eq!(s.paths["/run/haproxy"].kind, PathType::Directory);
        assert!(s.packages["nginx"]);
        assert!(!s.packages["haproxy"]);
        assert!(s.services["nginx"].active && s.services["nginx"].enabled);
        assert!(!s.services["haproxy"].active);
        assert_eq!(s.pending_handlers, vec![(2, "reload nginx".to_string())]);
        assert_eq!(s.lock.as_deref(), Some("alice@laptop pid 42"));
        // The lock does not change the fingerprint.
        let mut t = s.clone();
        t.lock = None;
        assert_eq!(facts_digest(&t), s.digest);
    }

    #[test]
    fn the_facts_digest_covers_facts_up_to_the_lock_and_bodies_follow_the_end() {
        let body = b"#foobar:end\nx\n";
        let digest = crate::render::sha256_hex(body);
        let facts = format!(
            "#foobar:stat\nregular file\t644\troot\troot\t14\t/etc/a\t/etc/a\t7 {OLD}\n\
             regular file\t644\troot\troot\t2\t/etc/b\t/etc/b\t8 {OLD}\n\
             #foobar:sha256\n{digest}  /etc/a\n{digest}  /etc/b\n#foobar:pending\n"
        );
        let gathered = clocked(&facts, NOW);
        let out = format!(
            "{LOCKED_MARK}{gathered}#foobar:lock\nsomeone\n#foobar:end\n/etc/a\t14\n#foobar:end\nx\n/etc/b\t2\nzz"
        );
        let (locked, s) = parse_output("h", out.as_bytes()).unwrap();
        assert!(locked);
        // The clock's line is neither a fact nor part of what a check prints.
        assert!(!s.paths.contains_key(CLOCK_PATH), "{:?}", s.paths);
        assert_eq!(s.cas, crate::render::sha256_hex(facts.as_bytes()));
        // A body may hold anything, even a line that looks like a section.
        assert_eq!(s.bodies["/etc/a"], body);
        // A body that is not what its digest says (the file changed after it was hashed) is
        // dropped: the plan reads it again.
        assert!(!s.bodies.contains_key("/etc/b"), "{:?}", s.bodies);
        // Who holds the lock is not part of what the apply compares, nor is the clock.
        let other = format!("{}#foobar:lock\n#foobar:end\n", clocked(&facts, LATER));
        assert_eq!(parse_output("h", other.as_bytes()).unwrap().1.cas, s.cas);
        // A body section that does not parse (a file that shrank between its stat and its
        // read) loses its bodies, not the facts.
        let broken = format!("{gathered}#foobar:lock\n#foobar:end\n/etc/a\t99\nshort");
        let (_, b) = parse_output("h", broken.as_bytes()).unwrap();
        assert!(b.bodies.is_empty());
        assert_eq!(b.cas, s.cas);
    }

    const OLD: &str = "2026-01-01 11:59:57.100000000 +0100";
    const NOW: &str = "2026-01-01 11:00:00.200000000 +0000";
    const LATER: &str = "2026-01-01 11:00:05.000000000 +0000";

    /// `facts` with the clock's line, reading `now`, at the end of its stat section.
    fn clocked(facts: &str, now: &str) -> String {
        facts.replacen(
            "#foobar:sha256",
            &format!(
                "directory\t555\troot\troot\t0\t{CLOCK_PATH}\t{CLOCK_PATH}\t1 {now}\n#foobar:sha256"
            ),
            1,
        )
    }

    /// The quick check hashes again only what its change time cannot vouch for:
    /// a file changed over 2 s before the clock is known by its stat line; one changed later (whatever the offset it is printed in), or any file when the clock
    /// is missing or a time does not read, is hashed.
    #[test]
    fn the_quick_check_hashes_only_racily_clean_files() {
        let facts = |a: &str, b: &str| {
            format!(
                "#foobar:stat\nregular file\t644\troot\troot\t1\t/etc/a\t/etc/a\t7 {a}\n\
                 regular file\t644\troot\troot\t1\t/etc/b b\t/etc/b b\t8 {b}\n\
                 #foobar:sha256\nda  /etc/a\ndb  /etc/b b\n#foobar:pending\n0\th\n"
            )
        };
        // 10:59:57.1 UTC is over 2 s before the clock (11:00:00.2); 12:00:00.2 +0100 is the
        // clock's own instant.
        let f = facts(OLD, "2026-01-01 12:00:00.200000000 +0100");
        let q = quick_facts(&clocked(&f, NOW));
        assert_eq!(q.hashed, vec!["/etc/b b".to_string()]);
        assert_eq!(q.text, f.replace("da  /etc/a\n", ""));
        // A whole second just before the clock is what a filesystem of whole-second change
        // times writes for a file made at 11:00:00.5, after the clock: hashed (once, `at < c`
        // vouched for it, and a same-size rewrite in that second went unseen).
        let f = facts(OLD, "2026-01-01 11:00:00.000000000 +0000");
        assert_eq!(
            quick_facts(&clocked(&f, NOW)).hashed,
            vec!["/etc/b b".to_string()]
        );
        let f = facts(OLD, "2026-01-01 10:59:58.300000000 +0000");
        assert_eq!(
            quick_facts(&clocked(&f, NOW)).hashed,
            vec!["/etc/b b".to_string()]
        );
        // Both older: no file is hashed, the section's header stays.
        let q = quick_facts(&clocked(&facts(OLD, OLD), NOW));
        assert!(q.hashed.is_empty());
        assert!(
            q.text.contains("#foobar:sha256\n#foobar:pending\n"),
            "{}",
            q.text
        );
        // No clock, or a time that does not read: everything is hashed.
        for text in [facts(OLD, OLD), clocked(&facts(OLD, "yesterday"), NOW)] {
            let q = quick_facts(&text);
            assert_eq!(
                q.hashed.len(),
                if text.contains("yesterday") { 1 } else { 2 }
            );
        }
    }

    /// What sh/firewall.sh prints, run for real on a state directory without nft's table:
    /// the confirmed digests are read, the live one is `none`.
    #[test]
    fn firewall_facts_are_read_from_the_script_s_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("confirmed.table"), "abc\n").unwrap();
        std::fs::write(dir.path().join("confirmed.nft"), "flush ruleset\n").unwrap();
        let script = format!(
            "{}firewall_facts \"$1\" \"$1/no-timer\" inet foobar-test-absent\n",
            crate::remote::sh::firewall()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(dir.path())
            .output()
            .unwrap();
        let text = format!(
            "#foobar:firewall-state\n{}#foobar:end\n",
            String::from_utf8_lossy(&out.stdout)
        );
        let state = parse_gather_output("h", &text).unwrap();
        let f = state.firewall.expect("the section is read");
        assert_eq!(f.live, None, "{text}");
        assert_eq!(f.confirmed.as_deref(), Some("abc"));
        assert_eq!(
            f.ruleset.as_deref(),
            Some(crate::render::sha256_hex(b"flush ruleset\n").as_str())
        );
        assert!(!f.pending);
        assert_eq!(
            parse_firewall_facts("live x\npending yes\n")
                .live
                .as_deref(),
            Some("x")
        );
    }

    #[test]
    fn stat_s_escape_quoting_is_read_back() {
        assert_eq!(unescape(r"/etc/a b -> /x\\y"), r"/etc/a b -> /x\y");
        assert_eq!(
            unescape(r"l -> a\n#foobar:end\tb"),
            "l -> a\n#foobar:end\tb"
        );
        assert_eq!(unescape(r"l -> /opt/\303\274"), "l -> /opt/ü");
    }

    #[test]
    fn truncated_output_is_an_error() {
        assert!(parse_gather_output("h", "#foobar:stat\n").is_err());
    }
}
