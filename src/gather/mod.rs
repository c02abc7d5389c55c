//! Gather: read what is live on a host in ONE remote command.
//!
//! In: the host's [`DesiredState`] (which paths, packages and services matter). Out: an
//! [`ActualState`] with each path's type, mode, owner, size and SHA-256, package presence,
//! service state, handlers left pending by an interrupted run, and the lock holder. The
//! script is generated, sent on stdin, and its output is framed by `#foobar:` section lines.
//! File bodies are not read here: [`fetch_contents`] reads only the ones whose digest differs,
//! for diffs.
//!
//! Here: the scripts and the remote calls; `parse.rs` reads their output back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::remote::layout::{FIREWALL_STATE, FIREWALL_TABLE, FIREWALL_TIMER, HOLDER, PENDING_FILE};
use crate::remote::{Section, sh};
use crate::render::{DesiredState, EntryKind};
use crate::shell::Script;
use crate::transport::{RemoteCommand, Transport, TransportError};

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

/// The firewall's live state, read when the host manages one ([`DesiredState::firewall`]):
/// digests of foobar's nftables table as loaded now and as it was when its ruleset was last
/// confirmed, and of the confirmed ruleset file (what the host loads at boot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallFacts {
    /// SHA-256 of `nft list table inet foobar` now; `None`: the table is not loaded.
    pub live: Option<String>,
    /// The same digest, recorded when the loaded ruleset was confirmed.
    pub confirmed: Option<String>,
    /// SHA-256 of the confirmed ruleset file.
    pub ruleset: Option<String>,
    /// A loaded change waits for its confirmation (its rollback timer runs).
    pub pending: bool,
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
    /// The firewall's state, when the host manages one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallFacts>,
    /// SHA-256 of everything above but the lock: the plan's fingerprint of this host.
    pub digest: String,
    /// SHA-256 of the raw output of [`facts_script`]: what an apply script compares on the
    /// host, under its lock, before it changes anything (compare-and-swap). Never saved here.
    #[serde(skip)]
    pub cas: String,
    /// What an apply script of the same run compares instead, as it is: no `sha256sum` of the
    /// output, and none of the files whose change time vouches for them. Never saved (a
    /// saved plan compares [`ActualState::cas`]).
    #[serde(skip)]
    pub cas_quick: Option<std::sync::Arc<QuickFacts>>,
    /// Bodies of files whose digest differs from the desired one, read in the gather itself
    /// while their total stays under [`INLINE_BODIES`] (for diffs). Never saved.
    #[serde(skip)]
    pub bodies: BTreeMap<String, Vec<u8>>,
}

/// The compare-and-swap of an apply in the run that gathered ([`quick_check_script`]), as
/// git checks its index: a file is known unchanged by its stat line (type, mode, owner, size,
/// inode, change time) alone, unless it changed in the same clock tick as the gather read it
/// ("racily clean": its change time is not at least 2 s older than [`CLOCK_PATH`]'s, the
/// coarsest filesystem granularity), or the clock could not be read; those are hashed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickFacts {
    /// What the check prints when nothing moved: the gather's facts without the clock's line,
    /// with the digests of `hashed` only.
    pub text: String,
    /// The files the check hashes.
    pub hashed: Vec<String>,
}

/// A body up to this size is sent by shell builtins rather than `head` (see [`gather_script`]).
const BUILTIN_BODY: u64 = 1024;

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

mod parse;

use parse::parse_frames;
pub use parse::{facts_digest, parse_firewall_facts, parse_gather_output, parse_output};

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
        .append(&facts(want, None, true));
    // A holder that exists but is still empty is being written (see `remote::lock`).
    s.code(sh::holder())
        .code(Section::Lock.echo())
        .code("\nread_holder ")
        .code(HOLDER)
        .code("\n");
    if let Some(db) = database {
        s.code(Section::Database.echo())
            .code("\n")
            .append(&probe(db.sql));
    }
    s.code(Section::End.echo()).code("\n");
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
        s.code(sh::gather())
            .code("send_bodies ")
            .int(INLINE_BODIES)
            .code(" ")
            .int(BUILTIN_BODY)
            .code(" ")
            .words(&expected)
            .code("\n");
    }
    // Every value is a word: only a NUL could fail, and load refuses those.
    s.to_stdin()
        .unwrap_or_else(|e| format!("echo {} >&2; exit 1\n", sh_quote(&e.to_string())))
}

/// A path the gather's `stat` reads after every managed path, and the facts leave out: the
/// new process's own `/proc` directory, made as `stat` looks it up, so its change time is the
/// host's clock at that moment (the kernel's coarse clock, the one file change times come
/// from). A file whose change time is older than it cannot change again and keep that change
/// time, so the apply's check under the lock needs no hash of it ([`QuickFacts`]).
pub const CLOCK_PATH: &str = "/proc/self/";

/// The part of the gather an apply script repeats under the lock to compare-and-swap: paths
/// (type, mode, owner, size, inode and change time), digests, packages, services, pending
/// handlers. Its output is deterministic for a given state; its SHA-256 is
/// [`ActualState::cas`] (a saved plan's check). Leaves sha256sum's lines in `$H`.
pub fn facts_script(want: &DesiredState) -> Script {
    facts(want, None, false)
}

/// The check an apply of the same run makes under its lock ([`QuickFacts`]): the facts
/// script, hashing only `hashed` (in the gather's order). Prints [`QuickFacts::text`] when
/// nothing moved.
pub fn quick_check_script(want: &DesiredState, hashed: &[String]) -> Script {
    facts(want, Some(hashed), false)
}

/// The facts script: every file hashed (`hash` None) or only those named; the gather adds
/// [`CLOCK_PATH`] to `stat` (`clock`).
fn facts(want: &DesiredState, hash: Option<&[String]>, clock: bool) -> Script {
    let mut paths: Vec<&str> = want.entries().map(|e| e.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    let packages = want.packages();
    let services = want.services();
    let mut s = Script::new();
    s.code(sh::lines()).code("H=\nS=\n");
    if !paths.is_empty() {
        // None of the paths there (a fresh host): stat and sha256sum are not started.
        s.code(sh::facts())
            .code("set -- ")
            .words(&paths)
            .code("\nx=; any_path \"$@\" && x=1\n")
            .code(Section::Stat.echo())
            .code("\n[ -n \"$x\" ] && stat_paths \"$@\"");
        if clock {
            s.code(" ").code(CLOCK_PATH);
        }
        s.code("\n");
        // Only regular files are hashed; sha256sum skips what it cannot read.
        let files: Vec<&str> = want
            .entries()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .map(|e| e.path.as_str())
            .filter(|p| hash.is_none_or(|h| h.iter().any(|f| f == p)))
            .collect();
        let any_files = want
            .entries()
            .any(|e| matches!(e.kind, EntryKind::File { .. }));
        if any_files {
            s.code(Section::Sha256.echo()).code("\n");
        }
        if !files.is_empty() {
            // One process for all files; digests of links and directories are ignored when
            // parsing (stat says what each path is).
            s.code("[ -n \"$x\" ] && hash_files ")
                .words(&files)
                .code("\n");
        }
    }
    if !packages.is_empty() {
        s.code(Section::Packages.echo())
            .code("\ndpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' -- ")
            .words(&packages)
            .code(" 2>/dev/null\n");
    }
    if !services.is_empty() {
        s.code(Section::Services.echo()).code("\ncommand -v systemctl >/dev/null 2>&1 && systemctl show --property=Id,ActiveState,UnitFileState,LoadState -- ")
            .words(&services)
            .code(" 2>/dev/null\n");
    }
    s.code(Section::Pending.echo())
        .code("\nprint_lines ")
        .code(PENDING_FILE)
        .code("\n");
    if want.firewall().is_some() {
        s.append(&firewall_facts());
    }
    s
}

/// The firewall's facts section ([`FirewallFacts`]), for the gather and verify.
pub fn firewall_facts() -> Script {
    let mut s = Script::new();
    s.code(sh::firewall())
        .code(Section::FirewallState.echo())
        .code("\nfirewall_facts ")
        .code(FIREWALL_STATE)
        .code(" ")
        .code(FIREWALL_TIMER)
        .code(" ")
        .code(FIREWALL_TABLE)
        .code("\n");
    s
}

fn probe(sql: &str) -> Script {
    let mut s = Script::new();
    s.code("# database facts\nif command -v mariadb >/dev/null 2>&1; then c=mariadb; elif command -v mysql >/dev/null 2>&1; then c=mysql; else c=; fi\n\
if [ -n \"$c\" ] && [ -S /run/mysqld/mysqld.sock ]; then\n\
d=$(my_print_defaults mysqld 2>/dev/null | sed -n 's/^--datadir=//p' | tail -n 1); d=${d:-/var/lib/mysql}\n\
p=$(sed -n 6p \"$d/master.info\" 2>/dev/null | tr -d '\\n')\n\
k=; [ -n \"$p\" ] && k=$(printf '%s' \"$p\" | sha1sum | cut -c1-40 | tr a-f A-F | basenc --base16 -d | sha1sum | cut -c1-40 | tr a-f A-F) && k=$(printf '*%s' \"$k\" | sha256sum | cut -c1-64)\n\
p=\n\
{ printf \"SET @foobar_log_off = @@SESSION.sql_log_off;\\nSET SESSION sql_log_off = 1;\\nSET @foobar_stored_source_check = '%s';\\nSET SESSION sql_log_off = @foobar_log_off;\\n\" \"$k\"; base64 -d ")
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
/// Before `sql`, it sets `@foobar_stored_source_check` to a digest of the source password a
/// MariaDB replica keeps in `<datadir>/master.info` (line 6), computed on the host: SHA-256
/// of its `mysql_native_password` hash, the same digest the facts print for accounts (see
/// [`crate::mysql::facts_sql`]). Neither the password nor anything derived from it is ever
/// sent to the server in a logged statement: the assignment runs with `sql_log_off` on (the
/// general log would otherwise keep it, readable by group `adm` on Debian), and the digest is
/// printable hex, so no quoting is involved. It travels on the client's stdin, never on a
/// command line.
pub fn database_probe(sql: &str) -> String {
    probe(sql)
        .to_stdin()
        .expect("a probe has no words that could hold a NUL")
}

/// [`database_probe`] as a script, for a script that reads more (verify's).
pub fn database_probe_script(sql: &str) -> Script {
    probe(sql)
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

/// [`gather`] (bounded by `timeout`), keeping the host's shell waiting for the apply's
/// script ([`Transport::run_and_hold`]; `session_timeout` bounds the whole session, the
/// apply's own bound): a changed host then costs one session, not two.
pub async fn gather_and_hold(
    transport: &dyn Transport,
    want: &DesiredState,
    database: Option<&DatabaseProbe<'_>>,
    timeout: std::time::Duration,
    session_timeout: std::time::Duration,
) -> Result<ActualState, GatherError> {
    let out = transport
        .run_and_hold(
            &RemoteCommand::script(session_timeout),
            gather_script(want, database).as_bytes(),
            timeout,
        )
        .await?;
    let out = checked(transport, out)?;
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

/// Run a read-only script; a non-zero exit is the host's failure to be read.
async fn run_script(
    transport: &dyn Transport,
    script: &str,
    timeout: std::time::Duration,
) -> Result<crate::transport::Output, GatherError> {
    let out = transport
        .run(&RemoteCommand::script(timeout), Some(script.as_bytes()))
        .await?;
    checked(transport, out)
}

/// A read-only script's output; a non-zero exit is the host's failure to be read.
fn checked(
    transport: &dyn Transport,
    out: crate::transport::Output,
) -> Result<crate::transport::Output, GatherError> {
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
        // The first lines set the stored source password's digest (empty here) unlogged;
        // then the SQL, as is.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}{sql}", unlogged_check(""))
        );
        assert!(!dir.path().join("PWNED").exists());
    }

    fn unlogged_check(digest: &str) -> String {
        format!(
            "SET @foobar_log_off = @@SESSION.sql_log_off;\nSET SESSION sql_log_off = 1;\n\
SET @foobar_stored_source_check = '{digest}';\nSET SESSION sql_log_off = @foobar_log_off;\n"
        )
    }

    /// The replica's stored source password is hashed on the host, the same way the facts
    /// hash accounts; the server is sent only that digest, and only with its logging off.
    #[test]
    fn the_stored_source_password_is_hashed_on_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let password = "s3cret 'with' \\ odd chars";
        std::fs::write(
            dir.path().join("master.info"),
            format!("33\nmariadb-bin.000001\n4\n10.0.0.1\nrepl\n{password}\n3306\n"),
        )
        .unwrap();
        let script = super::database_probe("SELECT 1;\n")
            .replace("[ -S /run/mysqld/mysqld.sock ]", "true")
            .replace(
                "d=${d:-/var/lib/mysql}",
                &format!("d={}", dir.path().display()),
            )
            .replace("} | \"$c\" ", "} | cat; : ");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            crate::mysql::mysql_native_password_hash(password).as_bytes(),
        ));
        assert_eq!(stdout, format!("{}SELECT 1;\n", unlogged_check(&digest)));
        let password_hex = hex::encode(password);
        for leak in [
            password,
            password_hex.as_str(),
            &password_hex.to_uppercase(),
        ] {
            assert!(!stdout.contains(leak), "{stdout}");
        }
    }
}
