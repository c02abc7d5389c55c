//! Shell scripts foobar runs as root on a host: one value, two renderings.
//!
//! A [`Script`] is built from parts whose kind says how they may reach the shell:
//! - [`Script::code`] takes only `&'static str`: foobar's own shell text, written in this
//!   crate, never a value from an inventory, playbook, template or synced file;
//! - [`Script::word`] quotes a value as one shell word (by `shlex`), whatever it holds;
//! - [`Script::trusted`] pastes a command verbatim; only the two commands a playbook author
//!   writes as commands go through it: a file's `validate` and a handler's `run:`;
//! - [`Script::data`] carries bytes (a file body) as a base64 here-document;
//! - [`Script::text`] carries a text body (UTF-8, no NUL) as one quoted word, for the
//!   shell's own `printf '%s'` to write: no process (see [`is_text`]).
//!
//! So no data can become code by forgetting to quote it: there is no way to add a `String`
//! as code. [`Script::to_stdin`] is the real script; `Display` is the same script with every
//! file body replaced by its size and digest (bodies may hold secrets), for golden tests and
//! traces. Both walk the same parts, so they cannot disagree.
//!
//! The module also holds what every remote script shares: the `OK`/`ERR` line protocol and its
//! parser ([`Reply`]), the backup path, the one restore routine (used by an apply script's
//! rollback and by a rollout's restore), and the one HAProxy runtime-API client.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Where each run keeps the files it replaced, one directory per run (root only).
pub const BACKUP_ROOT: &str = "/var/backups/foobar";
/// How many runs' backups a host keeps unless the playbook says `keep_backups:`.
pub const DEFAULT_KEEP_BACKUPS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("`{0}` holds a NUL byte, which no shell word can carry")]
    Nul(String),
    #[error("a body given as text is not UTF-8 text without NUL bytes")]
    NotText,
}

/// Whether a body can travel as a quoted word ([`Script::text`]): UTF-8 without NUL bytes.
/// Anything else travels as base64 ([`Script::data`]).
pub fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

#[derive(Clone)]
enum Part {
    Code(&'static str),
    /// Digits, from an integer: code by construction.
    Number(String),
    Word(String),
    Trusted(String),
    Data(Arc<[u8]>),
    /// A body that [`is_text`], as one quoted word.
    Text(Arc<[u8]>),
    /// A comment line; control characters become spaces, so it cannot end early.
    Comment(String),
}

/// A shell script under construction. See the module documentation.
#[derive(Clone, Default)]
pub struct Script {
    parts: Vec<Part>,
}

/// The directory `path` is in (`/` for a top-level path, `.` for a bare name).
pub fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, _)) => d,
        None => ".",
    }
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// foobar's own shell text.
    pub fn code(&mut self, text: &'static str) -> &mut Self {
        self.parts.push(Part::Code(text));
        self
    }

    /// `{ [ -d DIR ] || mkdir -p -- DIR; }` for the parent directory of foobar's own file
    /// `path`: no process when it exists (`[` is a builtin), as on every run after the first.
    pub fn parent_dir_made(&mut self, path: &'static str) -> &mut Self {
        let dir = parent(path);
        self.code("{ [ -d ")
            .code(dir)
            .code(" ] || mkdir -p -- ")
            .code(dir)
            .code("; }")
    }

    /// A value, quoted as exactly one shell word.
    pub fn word(&mut self, value: impl AsRef<str>) -> &mut Self {
        self.parts.push(Part::Word(value.as_ref().to_string()));
        self
    }

    /// Values, each quoted as one word, separated by spaces.
    pub fn words<I, S>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.code(" ");
            }
            self.word(v);
        }
        self
    }

    /// A decimal number.
    pub fn int(&mut self, n: impl Into<u64>) -> &mut Self {
        self.parts.push(Part::Number(n.into().to_string()));
        self
    }

    /// A file mode, as four octal digits.
    pub fn octal(&mut self, mode: u32) -> &mut Self {
        self.parts
            .push(Part::Number(format!("{:04o}", mode & 0o7777)));
        self
    }

    /// A command the playbook author wrote as a command (`validate`, a handler's `run:`),
    /// pasted as it is. Nothing else may come through here.
    pub fn trusted(&mut self, command: impl AsRef<str>) -> &mut Self {
        self.parts.push(Part::Trusted(command.as_ref().to_string()));
        self
    }

    /// A here-document carrying `bytes` in base64: the part must end a command line, e.g.
    /// `s.code("base64 -d > \"$T\" ").data(body)`. It ends the line itself.
    pub fn data(&mut self, bytes: Arc<[u8]>) -> &mut Self {
        self.parts.push(Part::Data(bytes));
        self
    }

    /// A text body (it must satisfy [`is_text`]) as exactly one quoted word, e.g.
    /// `s.code("printf '%s' ").text(body).code(" > \"$T\"")`: `printf` is a builtin of every
    /// POSIX shell, so writing the body starts no process, and `%s` prints it as it is.
    /// Shown as its size and digest, like [`Script::data`].
    pub fn text(&mut self, bytes: Arc<[u8]>) -> &mut Self {
        self.parts.push(Part::Text(bytes));
        self
    }

    /// Whether any value in the script (a word, a trusted command, a body) holds `needle`:
    /// e.g. a here-document's end marker, which no line of what it carries may equal.
    pub fn mentions(&self, needle: &str) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Word(v) | Part::Trusted(v) | Part::Comment(v) => v.contains(needle),
            Part::Text(b) | Part::Data(b) => String::from_utf8_lossy(b).contains(needle),
            Part::Code(_) | Part::Number(_) => false,
        })
    }

    /// A `# ...` line (e.g. the play's name, which traces and tests read).
    pub fn comment(&mut self, text: &str) -> &mut Self {
        self.parts.push(Part::Comment(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        ));
        self
    }

    /// Appends another script.
    pub fn append(&mut self, other: &Script) -> &mut Self {
        self.parts.extend(other.parts.iter().cloned());
        self
    }

    fn render(&self, real: bool) -> Result<String, ShellError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Code(c) => out.push_str(c),
                Part::Number(n) => out.push_str(n),
                Part::Word(w) => out.push_str(&quote(w)?),
                Part::Trusted(t) => out.push_str(t),
                Part::Comment(c) => {
                    out.push_str("# ");
                    out.push_str(c);
                    out.push('\n');
                }
                Part::Text(bytes) => {
                    if real {
                        // Checked first: an error must never carry the body (it may be secret).
                        let text = std::str::from_utf8(bytes)
                            .ok()
                            .filter(|t| !t.contains('\0'))
                            .ok_or(ShellError::NotText)?;
                        out.push_str(&quote(text).map_err(|_| ShellError::NotText)?);
                    } else {
                        out.push_str(&format!(
                            "'<{} bytes, sha256 {}>'",
                            bytes.len(),
                            crate::render::sha256_hex(bytes)
                        ));
                    }
                }
                Part::Data(bytes) => {
                    out.push_str("<<'__FOOBAR_DATA__'\n");
                    if real {
                        let encoded = STANDARD.encode(bytes);
                        for chunk in encoded.as_bytes().chunks(76) {
                            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
                            out.push('\n');
                        }
                    } else {
                        out.push_str(&format!(
                            "# {} bytes, sha256 {}\n",
                            bytes.len(),
                            crate::render::sha256_hex(bytes)
                        ));
                    }
                    out.push_str("__FOOBAR_DATA__\n");
                }
            }
        }
        Ok(out)
    }

    /// The script for `sh -s`. Holds file bodies (which may hold secrets): never log it.
    pub fn to_stdin(&self) -> Result<String, ShellError> {
        self.render(true)
    }
}

/// The script with every file body replaced by its size and digest.
impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.render(false) {
            Ok(s) => f.write_str(&s),
            Err(e) => write!(f, "# cannot be rendered: {e}"),
        }
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One value as one POSIX shell word.
pub fn quote(value: &str) -> Result<String, ShellError> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| ShellError::Nul(value.replace('\0', "\\0")))
}

/// [`quote`] for values checked at load time to hold no NUL (paths, names): a NUL there is a
/// bug in foobar, so it is shown escaped rather than dropped silently.
pub fn sh_quote(value: &str) -> String {
    quote(value).unwrap_or_else(|_| quote(&value.replace('\0', "\\0")).expect("no NUL left"))
}

/// A command line from argv words, each quoted.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| sh_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// The line protocol of apply scripts.

/// Shell functions every apply script starts with: the line protocol. Every field a script
/// prints is a step number foobar chose, a fixed keyword, or base64: no path or name from the
/// plan ever reaches the output, so no value can forge or break a line.
pub const PROTOCOL: &str = r#"ok() { printf 'OK\t%s\n' "$1"; }
skip() { printf 'SKIP\t%s\n' "$1"; }
err() { printf 'ERR\t%s\t%s\t' "$1" "$2"; printf '%s' "$3" | base64 -w0; echo; }
rolled_back() { printf 'ROLLBACK\t%s\t' "$1"; printf '%s' "$2" | base64 -w0; printf '\t'; printf '%s' "$3" | base64 -w0; echo; }
"#;

/// One line of an apply script's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Step `n` is done.
    Ok(usize),
    /// Step `n` was not needed.
    Skip(usize),
    /// Step `n` failed at `stage` with this output; the script stopped.
    Err {
        step: usize,
        stage: String,
        output: String,
    },
    /// Handler step `n` failed (`first`); the files were restored and the handler ran again
    /// (`second`).
    Rollback {
        step: usize,
        first: String,
        second: String,
    },
    /// The script's lock step found the host locked by this holder; nothing was changed.
    Locked(String),
    /// The script's compare-and-swap found the host's facts changed since the plan; nothing
    /// was changed and the lock was released.
    Stale,
    /// A host script's output for play `n` follows (see `apply::script::host_script`).
    Play(usize),
    /// A host script stopped between plays because the run was interrupted, and released
    /// the lock.
    Stopped,
    /// A host script ran all its plays and released the lock.
    Unlocked,
    /// The script reached its end.
    Done,
}

fn decode(field: Option<&str>) -> String {
    let bytes = STANDARD
        .decode(field.unwrap_or("").trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Parse one output line; `None` for anything that is not protocol (a command's stray output).
pub fn parse_reply(line: &str) -> Option<Reply> {
    let mut f = line.split('\t');
    let kind = f.next()?;
    let step = |s: Option<&str>| s.and_then(|s| s.parse::<usize>().ok());
    match kind {
        "OK" => Some(Reply::Ok(step(f.next())?)),
        "SKIP" => Some(Reply::Skip(step(f.next())?)),
        "ERR" => {
            let n = step(f.next())?;
            let stage = f.next()?.to_string();
            Some(Reply::Err {
                step: n,
                stage,
                output: decode(f.next()),
            })
        }
        "ROLLBACK" => {
            let n = step(f.next())?;
            Some(Reply::Rollback {
                step: n,
                first: decode(f.next()),
                second: decode(f.next()),
            })
        }
        "LOCKED" => Some(Reply::Locked(
            decode(f.next())
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(", "),
        )),
        "STALE" if f.next().is_none() => Some(Reply::Stale),
        "PLAY" => Some(Reply::Play(step(f.next())?)),
        "STOPPED" if f.next().is_none() => Some(Reply::Stopped),
        "UNLOCKED" if f.next().is_none() => Some(Reply::Unlocked),
        "DONE" if f.next().is_none() => Some(Reply::Done),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Backups and restore: one implementation for an apply's rollback and a rollout's restore.

/// Where `run_id` keeps the backup of `path` on the host.
pub fn backup_path(run_id: &str, path: &str) -> String {
    format!("{BACKUP_ROOT}/{run_id}{path}")
}

/// Shell functions for backups and restores.
///
/// An apply script copies what it replaces into the run's root-only directory itself (one
/// `cp -a --parents` per play, `apply::script`). `protect_backup PATH BACKUP` makes a sensitive file's copy 0600 and keeps its mode
/// beside it. `restore_one PATH BACKUP` puts BACKUP back over PATH (atomically, with its
/// mode), or removes PATH when there was nothing to back up (foobar created it).
pub const BACKUP_FUNCTIONS: &str = r#"protect_backup() {
  if [ -f "$2" ] && [ ! -L "$2" ]; then stat -c %a -- "$1" > "$2.foobar-mode" && chmod 0600 -- "$2" || return 1; fi
  return 0
}
restore_one() {
  if [ -e "$2" ] || [ -L "$2" ]; then
    rm -f -- "$1.foobar-restore" && cp -a -- "$2" "$1.foobar-restore" || return 1
    if [ -f "$2.foobar-mode" ]; then chmod -- "$(cat -- "$2.foobar-mode")" "$1.foobar-restore" || return 1; fi
    mv -f -- "$1.foobar-restore" "$1"
  else
    rm -f -- "$1"
  fi
}
"#;

/// A script that restores `paths` from `run_id`'s backups (removing those the run created),
/// runs systemd's `daemon-reload` if a unit was among them, then `handlers` (each already
/// built by [`handler_command`]), and prints `RESTORED`. A rollout's restore after a failed
/// health gate.
pub fn restore_script(run_id: &str, paths: &[String], handlers: &[Script]) -> Script {
    let mut s = Script::new();
    s.code("set -u\numask 077\n").code(BACKUP_FUNCTIONS);
    for p in paths {
        s.code("restore_one ")
            .word(p)
            .code(" ")
            .word(backup_path(run_id, p))
            .code(" || echo 'a file could not be restored' >&2\n");
    }
    if paths.iter().any(|p| is_unit(p)) {
        s.code("systemctl daemon-reload >/dev/null 2>&1\n");
    }
    for h in handlers {
        s.code("( umask 022; ").append(h).code(
            " ) >/dev/null 2>&1 </dev/null || echo 'a handler failed after the restore' >&2\n",
        );
    }
    s.code("echo RESTORED\n");
    s
}

/// A systemd unit: changing one needs `systemctl daemon-reload`.
pub fn is_unit(path: &str) -> bool {
    path.starts_with("/etc/systemd/") || path.starts_with("/lib/systemd/")
}

/// Prune a host's backups to the newest `keep` runs (run ids sort by time): sets the
/// positional parameters to the run directories beyond them (only names that look like run
/// ids), for the caller's one `rm -rf -- "$@"` ([`REMOVE_ARGS`]), which may remove more (the
/// lock) in the same process.
pub fn prune_backups(keep: u32) -> Script {
    let mut s = Script::new();
    // `for d do` walks the list as it was; each `shift` drops one old entry, victims are
    // appended behind them.
    s.code("set -- ")
        .code(BACKUP_ROOT)
        .code("/[0-9]*Z-*; n=$#; for d do shift; [ -d \"$d\" ] && [ \"$n\" -gt ")
        .int(keep.max(1))
        .code(" ] && { set -- \"$@\" \"$d\"; n=$((n-1)); }; done\n");
    s
}

/// Remove what the positional parameters name, in one process (none when they name nothing).
pub const REMOVE_ARGS: &str = "[ $# -eq 0 ] || rm -rf -- \"$@\"\n";

// ---------------------------------------------------------------------------------------------
// Handlers and services.

/// What a handler runs: a service action (names quoted) or the author's own command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerCommand<'a> {
    Service { action: &'static str, name: &'a str },
    Run(&'a str),
}

/// The command of a handler as script text.
pub fn handler_command(c: &HandlerCommand<'_>) -> Script {
    let mut s = Script::new();
    match c {
        HandlerCommand::Service { action, name } => {
            s.code("systemctl ").code(action).code(" -- ").word(name);
        }
        HandlerCommand::Run(cmd) => {
            s.trusted(cmd);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// HAProxy's runtime API.

/// A script that sends `commands` (`;`-separated, one connection) to the HAProxy runtime API
/// at `socket` and prints the answer (Python: Debian's HAProxy does not pull in socat).
pub fn haproxy_runtime(socket: &str, commands: &str) -> Script {
    let mut s = Script::new();
    s.code("python3 -c 'import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect(sys.argv[1])\ns.sendall(sys.argv[2].encode()+b\"\\n\")\nb=b\"\"\nwhile True:\n  d=s.recv(65536)\n  if not d: break\n  b+=d\nsys.stdout.write(b.decode())' ")
        .word(socket)
        .code(" ")
        .word(commands);
    s
}

/// One `GET /` to `addr` (`ip:port`) with `Host: host`, run on a host: prints the status
/// code on the first line, then the body. For checks that must start inside the hosts'
/// network (a floating address, web hosts behind the load balancers), not from foobar's.
pub fn http_get(addr: &str, host: &str) -> Script {
    let mut s = Script::new();
    s.code(include_str!("shell/http_get.sh"))
        .code("http_get ")
        .word(addr)
        .code(" ")
        .word(host)
        .code("\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_whatever_they_hold() {
        let mut s = Script::new();
        s.code("echo ")
            .word("a b")
            .code(" ")
            .word("$(id)")
            .code(" ")
            .word("it's");
        let text = s.to_stdin().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b $(id) it's\n");
    }

    #[test]
    fn a_nul_byte_is_refused_not_dropped() {
        let mut s = Script::new();
        s.word("a\0b");
        assert!(matches!(s.to_stdin(), Err(ShellError::Nul(_))));
    }

    #[test]
    fn data_is_shown_by_digest_and_sent_in_base64() {
        let mut s = Script::new();
        s.code("base64 -d ").data(Arc::from(&b"secret\n"[..]));
        assert!(!s.to_string().contains("c2VjcmV0"), "{s}");
        assert!(s.to_string().contains("# 7 bytes, sha256 "));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(s.to_stdin().unwrap())
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"secret\n");
    }

    #[test]
    fn protocol_lines_round_trip() {
        let script = format!(
            "{PROTOCOL}ok 3\nskip 4\nerr 5 stage \"$(printf 'bad\\tthing\\nhere')\"\nrolled_back 6 one two\necho DONE\n"
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let replies: Vec<Reply> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(parse_reply)
            .collect();
        assert_eq!(
            replies,
            vec![
                Reply::Ok(3),
                Reply::Skip(4),
                Reply::Err {
                    step: 5,
                    stage: "stage".into(),
                    output: "bad\tthing\nhere".into()
                },
                Reply::Rollback {
                    step: 6,
                    first: "one".into(),
                    second: "two".into()
                },
                Reply::Done,
            ]
        );
        assert_eq!(parse_reply("OK\t/etc/x"), None);
        assert_eq!(
            parse_reply("LOCKED\tYWxpY2UgcGlkIDQyCg=="),
            Some(Reply::Locked("alice pid 42".into()))
        );
        assert_eq!(parse_reply("STALE"), Some(Reply::Stale));
        assert_eq!(parse_reply("PLAY\t3"), Some(Reply::Play(3)));
        assert_eq!(parse_reply("STOPPED"), Some(Reply::Stopped));
    }

    #[test]
    fn handler_service_names_are_words() {
        let s = handler_command(&HandlerCommand::Service {
            action: "restart",
            name: "x; id",
        });
        assert_eq!(s.to_string(), "systemctl restart -- 'x; id'");
    }
}
