//! Gather: read what is live on a host in ONE remote command.
//!
//! In: the host's [`DesiredState`] (which paths, packages and services matter). Out: an
//! [`ActualState`] with each path's type, mode, owner, size and SHA-256, package presence,
//! service state, handlers left pending by an interrupted run, and the lock holder. The
//! script is generated, sent on stdin, and its output is framed by `#foobar:` section lines.
//! File bodies are not read here: [`fetch_contents`] reads only the ones whose digest differs,
//! for diffs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apply::lock::{LOCK_DIR, LOCKED_MARK};
use crate::render::{DesiredState, EntryKind};
use crate::shell::Script;
use crate::transport::{RemoteCommand, Transport, TransportError};

pub const STATE_DIR: &str = "/var/lib/foobar";
pub const PENDING_FILE: &str = "/var/lib/foobar/pending-handlers";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathType {
    File,
    Directory,
    Link,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathFacts {
    pub kind: PathType,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    pub digest: Option<String>,
    pub link_target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFacts {
    pub active: bool,
    pub enabled: bool,
    /// The unit file is known to the service manager.
    pub exists: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActualState {
    /// Absent paths have no entry.
    pub paths: BTreeMap<String, PathFacts>,
    pub packages: BTreeMap<String, bool>,
    pub services: BTreeMap<String, ServiceFacts>,
    /// `(play index, handler name)` recorded by a run that changed files but did not get to
    /// run their handlers.
    pub pending_handlers: Vec<(usize, String)>,
    /// Who holds the host's lock, if anyone.
    pub lock: Option<String>,
    /// Raw database facts text (parsed by the mysql module), when the host runs a database.
    pub database: Option<String>,
    /// SHA-256 of everything above but the lock: the plan's fingerprint of this host.
    pub digest: String,
    /// SHA-256 of the raw output of [`facts_script`]: what an apply script compares on the
    /// host, under its lock, before it changes anything (compare-and-swap). Never saved here.
    #[serde(skip)]
    pub cas: String,
    /// Bodies of files whose digest differs from the desired one, read in the gather itself
    /// while their total stays under [`INLINE_BODIES`] (for diffs). Never saved.
    #[serde(skip)]
    pub bodies: BTreeMap<String, Vec<u8>>,
}

/// Bodies of differing files up to this many bytes in total come back with the gather, so a
/// small change needs no second round trip for its diff.
pub const INLINE_BODIES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("reading the state of {host} failed (exit {code:?}): {stderr}")]
    Script {
        host: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("cannot understand what {host} answered: {detail}")]
    Parse { host: String, detail: String },
}

pub use crate::shell::sh_quote;

/// The SQL that reads database facts, run over the local socket as root. Provided by the
/// caller (the mysql module) so gather stays independent of the database flavour.
pub struct DatabaseProbe<'a> {
    pub sql: &'a str,
}

/// The one script that reads everything `want` needs: [`facts_script`], the lock holder,
/// database facts, `#foobar:end`, then (framed by length) the bodies of the files whose
/// digest differs from the desired one, up to [`INLINE_BODIES`] in total.
pub fn gather_script(want: &DesiredState, database: Option<&DatabaseProbe<'_>>) -> String {
    let mut s = Script::new();
    s.code("# gather\nexport LC_ALL=C\n")
        .append(&facts_script(want));
    s.code("echo '#foobar:lock'\nn=0; while [ -d ")
        .code(LOCK_DIR)
        .code(" ] && [ ! -s ")
        .code(LOCK_DIR)
        .code("/holder ] && [ $n -lt 20 ]; do sleep 0.1; n=$((n+1)); done\n[ -f ")
        .code(LOCK_DIR)
        .code(
            "/holder ] && while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < ",
        )
        .code(LOCK_DIR)
        .code("/holder\n");
    if let Some(db) = database {
        s.code("echo '#foobar:database'\n").append(&probe(db.sql));
    }
    s.code("echo '#foobar:end'\n");
    // Bodies of differing files: `$H` holds sha256sum's lines; a line that is not exactly
    // the desired `digest  path` names a file whose body the diff will want.
    let expected: Vec<String> = want
        .entries()
        .filter_map(|e| match &e.kind {
            EntryKind::File { digest, .. } => Some(format!("{digest}  {}", e.path)),
            _ => None,
        })
        .collect();
    if !expected.is_empty() {
        s.code("t=0\nprintf '%s\\n' \"${H-}\" | while IFS= read -r l; do case $l in ''|\\\\*");
        for e in &expected {
            s.code("|").word(e);
        }
        s.code(") ;; *) f=${l#*  }; [ -f \"$f\" ] && [ ! -L \"$f\" ] && z=$(wc -c < \"$f\") && [ $((t+z)) -le ")
            .int(INLINE_BODIES)
            .code(" ] && t=$((t+z)) && printf '%s\\t%s\\n' \"$f\" \"$z\" && cat -- \"$f\";; esac; done\n");
    }
    // Every value is a word: only a NUL could fail, and load refuses those.
    s.to_stdin()
        .unwrap_or_else(|e| format!("echo {} >&2; exit 1\n", sh_quote(&e.to_string())))
}

/// The part of the gather an apply script repeats under the lock to compare-and-swap: paths,
/// digests, packages, services, pending handlers. Its output is deterministic for a given
/// state; its SHA-256 is [`ActualState::cas`]. Leaves sha256sum's lines in `$H`.
pub fn facts_script(want: &DesiredState) -> Script {
    let mut paths: Vec<&str> = want.entries().map(|e| e.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    let packages = want.packages();
    let services = want.services();
    let mut s = Script::new();
    s.code("H=\n");
    if !paths.is_empty() {
        // Paths hold no control characters (checked at load): `%n` is the path as it is, and
        // `%N` with literal quoting is `path -> target` for a link.
        s.code("echo '#foobar:stat'\nQUOTING_STYLE=literal stat --printf '%F\\t%a\\t%U\\t%G\\t%s\\t%n\\t%N\\n' -- ")
            .words(&paths)
            .code(" 2>/dev/null\n");
        // Only regular files are hashed; sha256sum skips what it cannot read.
        let files: Vec<&str> = want
            .entries()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .map(|e| e.path.as_str())
            .collect();
        if !files.is_empty() {
            // One process for all files; digests of links and directories are ignored when
            // parsing (stat says what each path is).
            s.code("echo '#foobar:sha256'\nH=$(sha256sum -- ")
                .words(&files)
                .code(" 2>/dev/null)\n[ -n \"$H\" ] && printf '%s\\n' \"$H\"\n");
        }
    }
    if !packages.is_empty() {
        s.code(
            "echo '#foobar:packages'\ndpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' -- ",
        )
        .words(&packages)
        .code(" 2>/dev/null\n");
    }
    if !services.is_empty() {
        s.code("echo '#foobar:services'\ncommand -v systemctl >/dev/null 2>&1 && systemctl show --property=Id,ActiveState,UnitFileState,LoadState -- ")
            .words(&services)
            .code(" 2>/dev/null\n");
    }
    // Shell builtins, not `cat`: every program started is a cost paid on every host.
    s.code("echo '#foobar:pending'\n[ -f ")
        .code(PENDING_FILE)
        .code(" ] && while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < ")
        .code(PENDING_FILE)
        .code("\n");
    s
}

fn parse_stat_line(line: &str) -> Option<(String, PathFacts)> {
    let mut parts = line.splitn(7, '\t');
    let kind = parts.next()?;
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    let owner = parts.next()?.to_string();
    let group = parts.next()?.to_string();
    let size = parts.next()?.parse().ok()?;
    // Paths hold no control characters (checked at load): `%n` is the path as it is, and
    // `%N` (literal quoting) is `path -> target` for a link.
    let path = parts.next()?.to_string();
    let shown = parts.next()?;
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

fn probe(sql: &str) -> Script {
    let mut s = Script::new();
    s.code("# database facts\nif command -v mariadb >/dev/null 2>&1; then c=mariadb; elif command -v mysql >/dev/null 2>&1; then c=mysql; else c=; fi\n\
if [ -n \"$c\" ] && [ -S /run/mysqld/mysqld.sock ]; then\n\
d=$(my_print_defaults mysqld 2>/dev/null | sed -n 's/^--datadir=//p' | tail -n 1); d=${d:-/var/lib/mysql}\n\
p=$(sed -n 6p \"$d/master.info\" 2>/dev/null | tr -d '\\n' | od -An -v -tx1 | tr -d ' \\n')\n\
{ printf \"SET @foobar_stored_source_password = UNHEX('%s');\\n\" \"$p\"; base64 -d ")
        .data(std::sync::Arc::from(sql.as_bytes()))
        .code("} | \"$c\" ")
        .words(crate::mysql::CLIENT_ARGS)
        .code(" 2>&1\nelse echo '#down'; fi\n");
    s
}

/// Shell that runs `sql` through the local client as root over the unix socket (no password
/// anywhere), or prints `#down` when no server is listening there. The SQL travels as base64
/// data: no line of it can end a here-document and run as shell.
///
/// Before `sql`, it sets `@foobar_stored_source_password` to the source password a MariaDB
/// replica keeps in `<datadir>/master.info` (line 6), hex-encoded by `od` so no quoting is
/// involved; the facts query prints only a digest of it (see [`crate::mysql::facts_sql`]).
/// It travels on the client's stdin, never on a command line.
pub fn database_probe(sql: &str) -> String {
    probe(sql)
        .to_stdin()
        .expect("a probe has no words that could hold a NUL")
}

/// Parse the framed output of [`gather_script`].
pub fn parse_gather_output(host: &str, text: &str) -> Result<ActualState, GatherError> {
    let mut state = ActualState::default();
    let mut section = "";
    let mut service: Option<(String, ServiceFacts)> = None;
    let mut database = String::new();
    let mut ended = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("#foobar:") {
            section = match name {
                "stat" => "stat",
                "sha256" => "sha256",
                "packages" => "packages",
                "services" => "services",
                "pending" => "pending",
                "lock" => "lock",
                "database" => "database",
                "end" => {
                    ended = true;
                    "end"
                }
                other => {
                    return Err(GatherError::Parse {
                        host: host.into(),
                        detail: format!("unknown section {other}"),
                    });
                }
            };
            continue;
        }
        match section {
            "stat" => {
                let (path, facts) = parse_stat_line(line).ok_or_else(|| GatherError::Parse {
                    host: host.into(),
                    detail: format!("bad stat line: {line}"),
                })?;
                state.paths.insert(path, facts);
            }
            "sha256" => {
                // sha256sum marks a name holding `\\` (or a newline) with a leading `\\` and
                // escapes it.
                let (escaped, line) = match line.strip_prefix('\\') {
                    Some(rest) => (true, rest),
                    None => (false, line),
                };
                if let Some((digest, path)) = line.split_once("  ")
                    && let Some(p) = state.paths.get_mut(&if escaped {
                        path.replace("\\n", "\n").replace("\\\\", "\\")
                    } else {
                        path.to_string()
                    })
                    && p.kind == PathType::File
                {
                    p.digest = Some(digest.to_string());
                }
            }
            "packages" => {
                if let Some((name, status)) = line.split_once('\t') {
                    state
                        .packages
                        .insert(name.to_string(), status.starts_with("ii"));
                }
            }
            "services" => {
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
            "pending" => {
                if let Some((play, name)) = line.split_once('\t')
                    && let Ok(play) = play.parse()
                {
                    let item = (play, name.to_string());
                    if !state.pending_handlers.contains(&item) {
                        state.pending_handlers.push(item);
                    }
                }
            }
            "lock" => {
                let l = state.lock.get_or_insert_with(String::new);
                if !l.is_empty() {
                    l.push_str(", ");
                }
                l.push_str(line);
            }
            "database" => {
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

/// Read every live fact `want` depends on: one remote command. Small bodies of differing
/// files come back with it ([`ActualState::bodies`]).
pub async fn gather(
    transport: &dyn Transport,
    want: &DesiredState,
    database: Option<&DatabaseProbe<'_>>,
    timeout: std::time::Duration,
) -> Result<ActualState, GatherError> {
    let out = run_script(transport, &gather_script(want, database), timeout).await?;
    Ok(parse_output(transport.host().as_str(), &out.stdout)?.1)
}

/// [`gather`] under the host's lock: `lock_script` runs first and prints `#foobar:locked`
/// when it took the lock. Returns whether it did, and the state read under it.
pub async fn gather_locked(
    transport: &dyn Transport,
    want: &DesiredState,
    database: Option<&DatabaseProbe<'_>>,
    timeout: std::time::Duration,
    lock_script: &str,
) -> Result<(bool, ActualState), GatherError> {
    let script = format!("{lock_script}{}", gather_script(want, database));
    let out = run_script(transport, &script, timeout).await?;
    parse_output(transport.host().as_str(), &out.stdout)
}

/// Read the bodies of the given files (for diffs), framed by length: one remote command.
pub async fn fetch_contents(
    transport: &dyn Transport,
    paths: &[&str],
    timeout: std::time::Duration,
) -> Result<BTreeMap<String, Vec<u8>>, GatherError> {
    if paths.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = run_script(transport, &fetch_script(paths), timeout).await?;
    parse_frames(transport.host().as_str(), &out.stdout)
}

/// Take the lock, read the state again under it and the bodies of `paths`: one command.
pub async fn lock_gather_fetch(
    transport: &dyn Transport,
    want: &DesiredState,
    timeout: std::time::Duration,
    lock_script: &str,
    paths: &[&str],
) -> Result<(bool, ActualState, BTreeMap<String, Vec<u8>>), GatherError> {
    let mut script = format!("{lock_script}{}", gather_script(want, None));
    if !paths.is_empty() {
        script.push_str(&fetch_script(paths));
    }
    let out = run_script(transport, &script, timeout).await?;
    let (locked, mut state) = parse_output(transport.host().as_str(), &out.stdout)?;
    let bodies = std::mem::take(&mut state.bodies);
    Ok((locked, state, bodies))
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
    const END: &[u8] = b"#foobar:end\n";
    let split = find_line(text, END)
        .map(|i| i + END.len())
        .ok_or_else(|| GatherError::Parse {
            host: host.to_string(),
            detail: "the output ended early".into(),
        })?;
    let mut state = parse_gather_output(host, &String::from_utf8_lossy(&text[..split]))?;
    // The facts part ends where the lock section starts.
    let facts_end = find_line(text, b"#foobar:lock\n").unwrap_or(0);
    state.cas = crate::render::sha256_hex(&text[..facts_end]);
    state.bodies = parse_frames(host, &text[split..])?;
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

/// Run a read-only script; a non-zero exit is the host's failure to be read.
async fn run_script(
    transport: &dyn Transport,
    script: &str,
    timeout: std::time::Duration,
) -> Result<crate::transport::Output, GatherError> {
    let out = transport
        .run(&RemoteCommand::script(timeout), Some(script.as_bytes()))
        .await?;
    if !out.success() {
        return Err(GatherError::Script {
            host: transport.host().to_string(),
            code: out.code,
            stderr: out.stderr_text().trim().to_string(),
        });
    }
    Ok(out)
}

fn fetch_script(paths: &[&str]) -> String {
    let mut s = Script::new();
    s.code("for f in ")
        .words(paths)
        .code("; do printf '%s\\t%s\\n' \"$f\" \"$(wc -c < \"$f\")\"; cat -- \"$f\"; done\n");
    s.to_stdin()
        .unwrap_or_else(|e| format!("echo {} >&2; exit 1\n", sh_quote(&e.to_string())))
}

/// `path<TAB>length<LF>` then that many bytes, for each file.
fn parse_frames(host: &str, data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, GatherError> {
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
regular file\t644\troot\troot\t12\t/etc/a.cfg\t/etc/a.cfg\n\
symbolic link\t777\troot\troot\t20\t/etc/l\t/etc/l -> /etc/a.cfg\n\
directory\t2775\thaproxy\thaproxy\t40\t/run/haproxy\t/run/haproxy\n\
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
        let facts = "#foobar:sha256\nabc  /etc/a\n#foobar:pending\n";
        let out = format!(
            "{LOCKED_MARK}{facts}#foobar:lock\nsomeone\n#foobar:end\n/etc/a\t14\n#foobar:end\nx\n"
        );
        let (locked, s) = parse_output("h", out.as_bytes()).unwrap();
        assert!(locked);
        assert_eq!(s.cas, crate::render::sha256_hex(facts.as_bytes()));
        // A body may hold anything, even a line that looks like a section.
        assert_eq!(s.bodies["/etc/a"], b"#foobar:end\nx\n");
        // Who holds the lock is not part of what the apply compares.
        let other = format!("{facts}#foobar:lock\n#foobar:end\n");
        assert_eq!(parse_output("h", other.as_bytes()).unwrap().1.cas, s.cas);
    }

    #[test]
    fn truncated_output_is_an_error() {
        assert!(parse_gather_output("h", "#foobar:stat\n").is_err());
    }
}

#[cfg(test)]
mod probe_tests {
    #[test]
    fn the_database_probe_sends_sql_as_data() {
        // A line that would end a plain here-document and run as shell.
        let sql = "SELECT 1;\n__FOOBAR_SQL__\ntouch PWNED\n__FOOBAR_DATA__\n";
        let script = super::database_probe(sql)
            .replace("[ -S /run/mysqld/mysqld.sock ]", "true")
            .replace("} | \"$c\" ", "} | cat; : ");
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .output()
            .unwrap();
        // The first line sets the stored source password (empty here); then the SQL, as is.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("SET @foobar_stored_source_password = UNHEX('');\n{sql}")
        );
        assert!(!dir.path().join("PWNED").exists());
    }
}
