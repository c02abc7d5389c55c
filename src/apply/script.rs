//! The remote script that applies one play's changes on one host, in one round trip.
//!
//! Order, and why: packages (validators need their binaries) -> directories -> stage every
//! changed file as a temp file beside its destination (written, chowned, chmodded, fsynced)
//! -> run every `validate` on the temp files -> only if all pass: record pending handlers,
//! back up and rename into place (atomic per file) -> links, removals, attribute fixes ->
//! `daemon-reload` if a unit changed -> enable/start services -> handlers. A failing handler
//! or service start restores every file this script replaced and runs the handler again.
//! Output is one line per event: `OK`, `SKIP`, `ERR` and `ROLLBACK`, tab-separated, with
//! command output base64-encoded so it cannot break the framing.

use std::fmt::Write as _;

use crate::gather::{LOCK_DIR, PENDING_FILE, sh_quote};
use crate::inventory::ServiceAction;
use crate::plan::{Action, Change, ChangeKind, HandlerRef};
use crate::render::{DesiredPlay, EntryKind};

pub struct ScriptInput<'a> {
    pub play: &'a DesiredPlay,
    pub changes: Vec<&'a Change>,
    pub handlers: Vec<&'a HandlerRef>,
    pub run_id: &'a str,
    pub backup_dir: &'a str,
    /// Release the host's lock at the end (the host's last script of this run).
    pub unlock: bool,
}

fn temp_path(dest: &str, run_id: &str) -> String {
    let (dir, base) = dest.rsplit_once('/').unwrap_or(("", dest));
    // Keep the file's own name last so validators that look at the extension still work.
    format!("{dir}/.foobar-{run_id}.{base}")
}

fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, _)) => d,
        None => ".",
    }
}

const PRELUDE: &str = r#"set -u
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
b64() { base64 -w0; echo; }
err() { printf 'ERR\t%s\t%s\t' "$1" "$2"; printf '%s' "$3" | b64; }
TMPS=""
SWAPPED=""
STARTED=" "
cleanup_tmps() { for t in $TMPS; do rm -f -- "$t"; done; }
rollback() {
  for pair in $SWAPPED; do
    dest=${pair%%|*}; bk=${pair#*|}
    if [ "$bk" = "-" ]; then rm -rf -- "$dest"; else cp -a -- "$bk" "$dest.foobar-restore" && mv -f -- "$dest.foobar-restore" "$dest"; fi
  done
  command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload >/dev/null 2>&1
}
"#;

pub fn build(input: &ScriptInput<'_>) -> String {
    let play_index = input.play.index;
    let mut s = format!(
        "# play {play_index} {}\n{PRELUDE}",
        input.play.name.replace('\n', " ")
    );
    // Plays of one host may run side by side (`after:`): the pending-handler record is
    // changed under a lock. This play's handlers are done (or their files were restored).
    let dir = parent(PENDING_FILE);
    let _ = writeln!(
        s,
        "with_pending() {{ mkdir -p {dir} && ( if command -v flock >/dev/null 2>&1; then flock 9; fi; \"$@\" ) 9>>{PENDING_FILE}.lock; }}\n\
clear_pending_now() {{ if [ -f {PENDING_FILE} ]; then grep -v '^{play_index}\t' {PENDING_FILE} > {PENDING_FILE}.new.$$; mv -f {PENDING_FILE}.new.$$ {PENDING_FILE}; fi; }}\n\
clear_pending() {{ with_pending clear_pending_now; }}"
    );
    let entry = |path: &str| input.play.entries.iter().find(|e| e.path == path);
    let changed = |kind: ChangeKind| {
        input
            .changes
            .iter()
            .filter(move |c| c.kind == kind && c.action != Action::Unchanged)
    };

    // Packages.
    let pkgs: Vec<&str> = changed(ChangeKind::Package)
        .map(|c| c.target.as_str())
        .collect();
    if !pkgs.is_empty() {
        let list = pkgs
            .iter()
            .map(|p| sh_quote(p))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            s,
            "if ! out=$(apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends -- {list} 2>&1 </dev/null); then err package {q} \"$out\"; exit 1; fi\nprintf 'OK\\tpackage\\t%s\\n' {q}",
            q = sh_quote(&pkgs.join(" "))
        );
    }

    // Directories.
    for c in changed(ChangeKind::Directory) {
        let Some(e) = entry(&c.target) else { continue };
        if let EntryKind::Directory { mode, owner, group } = &e.kind {
            let p = sh_quote(&c.target);
            let _ = writeln!(
                s,
                "if ! out=$( {{ [ -d {p} ] || {{ rm -f -- {p}; mkdir -p -- {p}; }}; }} && chown {o}:{g} {p} && chmod {mode:04o} {p} 2>&1); then err directory {p} \"$out\"; exit 1; fi\nprintf 'OK\\tdirectory\\t%s\\n' {p}",
                o = sh_quote(owner),
                g = sh_quote(group),
            );
        }
    }

    // Stage files whose content changes.
    let mut staged: Vec<(String, String, Option<String>)> = Vec::new();
    for c in changed(ChangeKind::File) {
        let Some(e) = entry(&c.target) else { continue };
        let EntryKind::File {
            content,
            mode,
            owner,
            group,
            validate,
            ..
        } = &e.kind
        else {
            continue;
        };
        let content_changes = c.content_changed;
        let dest = sh_quote(&c.target);
        if !content_changes {
            // Only owner or mode differ: fix them in place.
            let _ = writeln!(
                s,
                "if ! out=$(chown {o}:{g} {dest} && chmod {mode:04o} {dest} 2>&1); then err attributes {dest} \"$out\"; exit 1; fi\nprintf 'OK\\tattributes\\t%s\\n' {dest}",
                o = sh_quote(owner),
                g = sh_quote(group),
            );
            continue;
        }
        let tmp = temp_path(&c.target, input.run_id);
        let qt = sh_quote(&tmp);
        let encoded = base64_lines(content);
        let _ = writeln!(
            s,
            "mkdir -p -- {par} || {{ err stage {dest} \"cannot create {par_text}\"; cleanup_tmps; exit 1; }}\nTMPS=\"$TMPS {qt}\"\nbase64 -d > {qt} <<'__FOOBAR_DATA__'\n{encoded}__FOOBAR_DATA__\nif ! out=$(chown {o}:{g} {qt} && chmod {mode:04o} {qt} && sync {qt} 2>&1); then err stage {dest} \"$out\"; cleanup_tmps; exit 1; fi",
            par = sh_quote(parent(&c.target)),
            par_text = parent(&c.target),
            o = sh_quote(owner),
            g = sh_quote(group),
        );
        staged.push((c.target.clone(), tmp, validate.clone()));
    }

    // Validate every staged file before any is swapped in.
    for (dest, tmp, validate) in &staged {
        if let Some(cmd) = validate {
            let cmd = cmd.replace("%s", &sh_quote(tmp));
            let _ = writeln!(
                s,
                "if ! out=$( ( {cmd} ) 2>&1 </dev/null); then err validate {d} \"$out\"; cleanup_tmps; exit 1; fi\nprintf 'OK\\tvalidate\\t%s\\n' {d}",
                d = sh_quote(dest)
            );
        }
    }

    // From here on the host changes: remember which handlers must run even if we die.
    if !input.handlers.is_empty() {
        s.push_str("add_pending() {\n{\n");
        for h in &input.handlers {
            let _ = writeln!(s, "printf '%s\\t%s\\n' {} {};", h.play, sh_quote(&h.name));
        }
        let _ = writeln!(
            s,
            "}} >> {PENDING_FILE} && sync {PENDING_FILE}\n}}\nwith_pending add_pending"
        );
    }

    let bk = sh_quote(input.backup_dir);
    let backup = |s: &mut String, path: &str| {
        let p = sh_quote(path);
        let _ = writeln!(
            s,
            "if [ -e {p} ] || [ -L {p} ]; then mkdir -p -m 0700 {bk} && mkdir -p -- {bk}{par} && cp -a -- {p} {bk}{p} && SWAPPED=\"$SWAPPED {p}|{bk}{p}\"; else SWAPPED=\"$SWAPPED {p}|-\"; fi",
            par = sh_quote(parent(path)),
        );
    };
    for (dest, tmp, _) in &staged {
        backup(&mut s, dest);
        let _ = writeln!(
            s,
            "if ! out=$(mv -f -- {t} {d} 2>&1); then err swap {d} \"$out\"; cleanup_tmps; rollback; exit 3; fi\nprintf 'OK\\tfile\\t%s\\n' {d}",
            t = sh_quote(tmp),
            d = sh_quote(dest)
        );
    }
    for c in changed(ChangeKind::Link) {
        let Some(e) = entry(&c.target) else { continue };
        let EntryKind::Link { target } = &e.kind else {
            continue;
        };
        backup(&mut s, &c.target);
        let tmp = sh_quote(&temp_path(&c.target, input.run_id));
        let _ = writeln!(
            s,
            "if ! out=$(mkdir -p -- {par} && rm -rf -- {tmp} && ln -s -- {t} {tmp} && mv -Tf -- {tmp} {l} 2>&1); then err link {l} \"$out\"; rollback; exit 3; fi\nprintf 'OK\\tlink\\t%s\\n' {l}",
            par = sh_quote(parent(&c.target)),
            t = sh_quote(target),
            l = sh_quote(&c.target)
        );
    }
    for c in changed(ChangeKind::File).filter(|c| c.action == Action::Delete) {
        backup(&mut s, &c.target);
        let p = sh_quote(&c.target);
        let _ = writeln!(
            s,
            "if ! out=$(rm -f -- {p} 2>&1); then err delete {p} \"$out\"; rollback; exit 3; fi\nprintf 'OK\\tdelete\\t%s\\n' {p}"
        );
    }

    let unit_changed = staged
        .iter()
        .any(|(d, _, _)| d.starts_with("/etc/systemd/") || d.starts_with("/lib/systemd/"));
    if unit_changed {
        s.push_str("systemctl daemon-reload >/dev/null 2>&1\n");
    }

    // Services: one `systemctl` call to enable and one to start them all, in declared order
    // (each call may be costly: a Python process on hosts without systemd).
    let services: Vec<&&Change> = changed(ChangeKind::Service).collect();
    let to_enable: Vec<&str> = services
        .iter()
        .filter(|c| c.action == Action::Enable || c.details.iter().any(|d| d == "and enable"))
        .map(|c| c.target.as_str())
        .collect();
    let to_start: Vec<&str> = services
        .iter()
        .filter(|c| c.action == Action::Start)
        .map(|c| c.target.as_str())
        .collect();
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|n| sh_quote(n))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if !to_enable.is_empty() {
        let _ = writeln!(
            s,
            "if ! out=$(systemctl enable {list} 2>&1); then err service {names} \"enable failed: $out\"; rollback; exit 3; fi",
            list = quoted(&to_enable),
            names = sh_quote(&to_enable.join(" ")),
        );
    }
    if !to_start.is_empty() {
        let _ = writeln!(
            s,
            "if ! out=$(systemctl start {list} 2>&1 </dev/null); then err service {names} \"start failed: $out\"; rollback; exit 3; fi\nSTARTED=\"${{STARTED}}{plain} \"",
            list = quoted(&to_start),
            names = sh_quote(&to_start.join(" ")),
            plain = to_start.join(" "),
        );
    }
    for c in &services {
        let _ = writeln!(s, "printf 'OK\\tservice\\t%s\\n' {}", sh_quote(&c.target));
    }

    // Handlers, in declared order, once each.
    for h in &input.handlers {
        let Some(spec) = input.play.handlers.iter().find(|x| x.name == h.name) else {
            continue;
        };
        let name = sh_quote(&h.name);
        let cmd = spec.command();
        if let Some((svc, action)) = &spec.service {
            // A service foobar just started already runs the new configuration.
            let _ = writeln!(
                s,
                "case \"$STARTED\" in *' {svc} '*) printf 'SKIP\\thandler\\t%s\\t%s\\n' {name} {why};; *)",
                why = sh_quote(&format!("{svc} was started by this run")),
            );
            let _ = action == &ServiceAction::Reload;
        } else {
            s.push_str("case x in *)\n");
        }
        let _ = writeln!(
            s,
            "if out=$( ( {cmd} ) 2>&1 </dev/null); then printf 'OK\\thandler\\t%s\\n' {name}; else\n  first=\"$out\"; rollback\n  if out2=$( ( {cmd} ) 2>&1 </dev/null); then second=\"ok after restoring the previous files\"; clear_pending; else second=\"$out2\"; fi\n  printf 'ROLLBACK\\thandler\\t%s\\t' {name}; printf '%s' \"$first\" | base64 -w0; printf '\\t'; printf '%s' \"$second\" | b64\n  exit 3\nfi;;\nesac"
        );
    }

    if !input.handlers.is_empty() {
        s.push_str("clear_pending\n");
    }
    if input.unlock {
        s.push_str(&unlock_script(input.run_id));
    }
    s.push_str("echo DONE\n");
    s
}

/// Remove the host's lock if this run holds it.
pub fn unlock_script(run_id: &str) -> String {
    format!(
        "if grep -q -F {id} {LOCK_DIR}/holder 2>/dev/null; then rm -rf {LOCK_DIR}; fi\n",
        id = sh_quote(&format!("run {run_id}"))
    )
}

/// Take the host's lock (or report who holds it), then gather. `mkdir` is the atomic step;
/// the holder is written right after (readers wait out that instant, see the gather).
pub fn lock_script(holder: &str, break_lock: bool) -> String {
    let mut s = String::from("# lock\n");
    if break_lock {
        let _ = writeln!(s, "rm -rf {LOCK_DIR}");
    }
    let _ = writeln!(
        s,
        "mkdir -p {dir} && if mkdir {LOCK_DIR} 2>/dev/null; then printf '%s\\n' {h} > {LOCK_DIR}/holder; echo '#foobar:locked'; fi",
        dir = parent(LOCK_DIR),
        h = sh_quote(holder)
    );
    s
}

fn base64_lines(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 + 4);
    for line in data.chunks(57) {
        for chunk in line.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            out.push(T[(n >> 18) as usize & 63] as char);
            out.push(T[(n >> 12) as usize & 63] as char);
            out.push(if chunk.len() > 1 {
                T[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if chunk.len() > 2 {
                T[n as usize & 63] as char
            } else {
                '='
            });
        }
        out.push('\n');
    }
    out
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        } as u32;
        buf = buf << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"hello world\n\x00\xff"] {
            assert_eq!(base64_decode(&base64_lines(data)), data);
        }
        assert_eq!(base64_lines(b"abc"), "YWJj\n");
    }

    #[test]
    fn temp_files_sit_beside_their_destination() {
        assert_eq!(
            temp_path("/etc/systemd/system/a.service", "r1"),
            "/etc/systemd/system/.foobar-r1.a.service"
        );
    }
}
