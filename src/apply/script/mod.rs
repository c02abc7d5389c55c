//! The remote script that applies one play's steps on one host, in one round trip.
//!
//! Order, and why: packages (validators need their binaries) -> directories -> stage every
//! changed file in a temp file created exclusively beside its destination (`mktemp`: mode
//! 0600, never an existing path), written, chowned (`-h`), chmodded -> fsync them all (one
//! `sync` call) -> run every
//! `validate` on the temp files -> only if all pass: record pending handlers, back up and
//! rename into place (atomic per file) -> links, removals -> `daemon-reload` if a unit changed
//! -> enable/start services -> handlers. A failing handler or service start restores every
//! file this script replaced and runs the handler again.
//!
//! Built with [`crate::shell::Script`]: every path, name and owner is a quoted word; only
//! `validate` and handler `run:` commands are pasted as commands. The script starts with
//! `umask 077`; what must be readable by others gets its mode explicitly (files, declared
//! directories) or runs under `umask 022` (package installs, missing parent directories,
//! validators, handlers). Rollback and cleanup are literal lines per file, guarded by
//! per-file variables holding nothing but `1` or a temp path, never a word-split list.
//! Output follows [`crate::remote::protocol::PROTOCOL`]: step numbers index [`Built::steps`].

use std::sync::Arc;

use crate::apply::outcome::Outcome;
use crate::plan::{Action, Change, HandlerCommand, HandlerRef, Step};
use crate::remote::layout::PENDING_FILE;
use crate::render::{DesiredPlay, EntryKind, sha256_hex};
use crate::shell::{Script, ShellError};
use head::{Staged, parent, temp_var};

mod files;
mod head;
pub(super) use head::PRELUDE;

pub use super::host_script::{host_script, host_script_on_success};
pub use crate::remote::lock::LockCheck;
pub use crate::remote::lock::{stop_file, stop_script};

pub struct ScriptInput<'a> {
    pub play: &'a DesiredPlay,
    pub changes: Vec<&'a Change>,
    pub handlers: Vec<&'a HandlerRef>,
    pub run_id: &'a str,
    /// Release the host's lock at the end (the host's last script of this run).
    pub unlock: bool,
    /// Runs whose backups the host keeps.
    pub keep_backups: u32,
    /// Take the host's lock and compare its facts with the plan's before any step (the
    /// host's first script of this run, when the plan was not made under the lock).
    pub lock: Option<LockCheck<'a>>,
    /// No other play of this run runs on the host while this script does (a host script's
    /// plays run one after another): the pending-handler record needs no `flock`.
    pub alone: bool,
    /// 64 random bits that make this script's temp file names unguessable.
    pub temp_salt: u64,
}

/// A built script and what each step number in its output stands for.
pub struct Built {
    pub script: Script,
    pub steps: Vec<Outcome>,
    /// Exactly what the script prints on stdout when every step succeeds (its `OK`, `SKIP`
    /// and `DONE` lines, in the order it prints them): a dry run's answer
    /// ([`crate::transport::Effect::Changes`]).
    pub on_success: String,
}

/// The end of a checked step: `then err <n>` and `on_error` (its stage word, cleanup, exit),
/// and past it `ok <n>`, noted in `printed` (what the script prints on success).
fn err_else_ok(body: &mut Script, printed: &mut String, n: u64, on_error: &'static str) {
    body.code("then err ")
        .int(n)
        .code(on_error)
        .code("\nok ")
        .int(n)
        .code("\n");
    ok_line(printed, n);
}

/// `OK <n>` as the protocol prints it.
fn ok_line(printed: &mut String, n: impl std::fmt::Display) {
    printed.push_str(&format!("OK\t{n}\n"));
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("the plan's {path} has digest {planned}, but today's render has {rendered}")]
    Digest {
        path: String,
        planned: String,
        rendered: String,
    },
    #[error("the plan names {0}, which this play does not render")]
    NotRendered(String),
    #[error(transparent)]
    Shell(#[from] ShellError),
}

pub fn build(input: &ScriptInput<'_>) -> Result<Built, ScriptError> {
    let play = input.play;
    let steps: std::cell::RefCell<Vec<Outcome>> = Default::default();
    let step = |o: Outcome| {
        let mut steps = steps.borrow_mut();
        steps.push(o);
        steps.len() - 1
    };
    let mut body = Script::new();
    let mut printed = String::new();
    let changed = |pred: fn(&Step) -> bool| {
        input
            .changes
            .iter()
            .filter(move |c| c.action != Action::Unchanged && pred(&c.step))
    };
    let content = |path: &str, digest: &str| -> Result<Arc<[u8]>, ScriptError> {
        let e = play
            .entries
            .iter()
            .find(|e| e.path == path)
            .ok_or_else(|| ScriptError::NotRendered(path.to_string()))?;
        match &e.kind {
            EntryKind::File { content, .. } => {
                let rendered = sha256_hex(content);
                if rendered != digest {
                    return Err(ScriptError::Digest {
                        path: path.to_string(),
                        planned: digest.to_string(),
                        rendered,
                    });
                }
                Ok(content.clone())
            }
            _ => Err(ScriptError::NotRendered(path.to_string())),
        }
    };

    // Packages: one apt-get for all.
    let pkgs: Vec<&str> = changed(|s| matches!(s, Step::Package { .. }))
        .map(|c| c.step.target())
        .collect();
    if !pkgs.is_empty() {
        let n = step(Outcome::Packages {
            names: pkgs.iter().map(|p| p.to_string()).collect(),
        });
        body.code("if ! out=$( (umask 022 && apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends -- ")
            .words(&pkgs)
            .code(") 2>&1 </dev/null); ");
        err_else_ok(
            &mut body,
            &mut printed,
            n as u64,
            " package \"$out\"; exit 1; fi",
        );
    }

    // Directories.
    for c in changed(|s| matches!(s, Step::Directory { .. })) {
        let Step::Directory {
            path,
            mode,
            owner,
            group,
        } = &c.step
        else {
            continue;
        };
        let n = step(Outcome::Directory { path: path.clone() }) as u64;
        body.code("if ! out=$(ensure_dir ")
            .word(path)
            .code(" ")
            .word(format!("{owner}:{group}"))
            .code(" ")
            .octal(*mode)
            .code(" 2>&1); ");
        err_else_ok(
            &mut body,
            &mut printed,
            n,
            " directory \"$out\"; exit 1; fi",
        );
    }

    // Files: fix attributes in place, or stage a new body.
    let mut staged: Vec<Staged<'_>> = Vec::new();
    let mut new_bodies: Vec<files::NewBody<'_>> = Vec::new();
    for c in changed(|s| matches!(s, Step::File { .. })) {
        let Step::File {
            path,
            digest,
            mode,
            owner,
            group,
            validate,
            sensitive,
            write,
        } = &c.step
        else {
            continue;
        };
        let owner_group = format!("{owner}:{group}");
        if !write {
            let n = step(Outcome::Attributes { path: path.clone() }) as u64;
            body.code("if ! out=$(fix_attributes ")
                .word(path)
                .code(" ")
                .word(&owner_group)
                .code(" ")
                .octal(*mode)
                .code(" 2>&1); ");
            err_else_ok(
                &mut body,
                &mut printed,
                n,
                " attributes \"$out\"; cleanup; exit 1; fi",
            );
            continue;
        }
        let bytes = content(path, digest)?;
        let var = staged.len();
        let n = step(Outcome::File { path: path.clone() });
        new_bodies.push(files::NewBody {
            step: n,
            var,
            path,
            bytes,
            mode: *mode,
            owner,
            group,
        });
        staged.push(Staged {
            step: n,
            var,
            path,
            validate: validate.as_deref(),
            sensitive: *sensitive,
        });
    }
    files::stage(&mut body, &new_bodies, input.temp_salt);

    // Validate every staged file before any is swapped in.
    for st in &staged {
        let Some(cmd) = st.validate else { continue };
        let n = step(Outcome::Validated {
            path: st.path.to_string(),
        }) as u64;
        body.code("if ! out=$( { umask 022; ");
        // `%s` is the staged file: the variable, never its text.
        for (i, piece) in cmd.split("%s").enumerate() {
            if i > 0 {
                temp_var(&mut body, st.var);
            }
            body.trusted(piece);
        }
        body.code("\n} 2>&1 </dev/null); ");
        err_else_ok(
            &mut body,
            &mut printed,
            n,
            " validate \"$out\"; cleanup; exit 1; fi",
        );
    }

    // Step numbers of links and removals come after the files' and validations'.
    let links: Vec<(usize, &str, &str)> = changed(|s| matches!(s, Step::Link { .. }))
        .filter_map(|c| match &c.step {
            Step::Link { path, target } => Some((path.as_str(), target.as_str())),
            _ => None,
        })
        .map(|(path, target)| {
            let n = step(Outcome::Link {
                path: path.to_string(),
            });
            (n, path, target)
        })
        .collect();
    let removals: Vec<(usize, &str)> = changed(|s| matches!(s, Step::Absent { .. }))
        .map(|c| {
            let path = c.step.target();
            let n = step(Outcome::Deleted {
                path: path.to_string(),
            });
            (n, path)
        })
        .collect();

    // Back up every path about to be replaced, before the first is (one `cp`).
    let replaced: Vec<(usize, &str, bool)> = staged
        .iter()
        .map(|st| (st.step, st.path, st.sensitive))
        .chain(links.iter().map(|(n, p, _)| (*n, *p, false)))
        .chain(removals.iter().map(|(n, p)| (*n, *p, false)))
        .collect();
    files::backup(&mut body, &replaced, input.run_id);

    // From here on the host changes: remember which handlers must run even if we die.
    // Lines are appended; with other plays of the run side by side, under their lock.
    if !input.handlers.is_empty() {
        body.code("add_pending() {\n{\n");
        for h in &input.handlers {
            body.code("printf '%s\\t%s\\n' ")
                .int(h.play as u64)
                .code(" ")
                .word(&h.name)
                .code(";\n");
        }
        body.code("} >> ")
            .code(PENDING_FILE)
            .code("\n}\n")
            .code(if input.alone {
                "pending_dir && add_pending\n"
            } else {
                "with_pending add_pending\n"
            });
    }
    // Every staged file and the pending record on disk before anything is renamed: one
    // `sync` for all of them.
    if !staged.is_empty() || !input.handlers.is_empty() {
        body.code("if ! out=$(sync -- ");
        for st in &staged {
            temp_var(&mut body, st.var);
            body.code(" ");
        }
        if !input.handlers.is_empty() {
            body.code(PENDING_FILE).code(" ");
        }
        body.code("2>&1); then err ")
            .int(replaced.first().map_or(steps.borrow().len(), |r| r.0) as u64)
            .code(" stage \"$out\"; cleanup; exit 1; fi\n");
    }

    // Swaps, links, removals, each with its own rollback line.
    let mut swapped: Vec<(usize, &str)> = Vec::new();
    for st in &staged {
        let k = swapped.len();
        body.code("if ! out=$(mv -fT -- ");
        temp_var(&mut body, st.var);
        body.code(" ")
            .word(st.path)
            .code(" 2>&1); then err ")
            .int(st.step as u64)
            .code(" swap \"$out\"; cleanup; rollback; exit 3; fi\nT_")
            .int(st.var as u64)
            .code("=; S_")
            .int(k as u64)
            .code("=1\nok ")
            .int(st.step as u64)
            .code("\n");
        ok_line(&mut printed, st.step);
        swapped.push((k, st.path));
    }
    for &(n, path, target) in &links {
        let k = swapped.len();
        let dir = parent(path);
        // `ln -s` (no -f) fails on any existing name: the temp link is created exclusively.
        body.code("if ! out=$( { (umask 022 && mkdir -p -- ")
            .word(dir)
            .code(") && L=$(mktemp -u -- ")
            .word(format!("{}/.foobar-XXXXXXXXXX", dir.trim_end_matches('/')))
            .code(") && ln -s -- ")
            .word(target)
            .code(" \"$L\" && { mv -fT -- \"$L\" ")
            .word(path)
            .code(" || { rm -f -- \"$L\"; false; }; }; } 2>&1); then err ")
            .int(n as u64)
            .code(" link \"$out\"; cleanup; rollback; exit 3; fi\nS_")
            .int(k as u64)
            .code("=1\nok ")
            .int(n as u64)
            .code("\n");
        ok_line(&mut printed, n);
        swapped.push((k, path));
    }
    for &(n, path) in &removals {
        let k = swapped.len();
        body.code("if ! out=$(rm -f -- ")
            .word(path)
            .code(" 2>&1); then err ")
            .int(n as u64)
            .code(" delete \"$out\"; cleanup; rollback; exit 3; fi\nS_")
            .int(k as u64)
            .code("=1\nok ")
            .int(n as u64)
            .code("\n");
        ok_line(&mut printed, n);
        swapped.push((k, path));
    }

    if staged
        .iter()
        .any(|s| crate::remote::backups::is_unit(s.path))
    {
        body.code("systemctl daemon-reload >/dev/null 2>&1\n");
    }

    // Services: one `systemctl` call to enable and one to start them all, in declared order
    // (each call may be costly: a Python process on hosts without systemd).
    let services: Vec<(&str, bool, bool)> = changed(|s| matches!(s, Step::Service { .. }))
        .filter_map(|c| match &c.step {
            Step::Service {
                name,
                start,
                enable,
                ..
            } => Some((name.as_str(), *start, *enable)),
            _ => None,
        })
        .collect();
    let service_steps: Vec<usize> = services
        .iter()
        .map(|(name, _, _)| {
            step(Outcome::Service {
                name: name.to_string(),
            })
        })
        .collect();
    let to_enable: Vec<&str> = services.iter().filter(|s| s.2).map(|s| s.0).collect();
    let to_start: Vec<&str> = services.iter().filter(|s| s.1).map(|s| s.0).collect();
    if let Some(&first) = service_steps.first() {
        if !to_enable.is_empty() {
            body.code("if ! out=$(systemctl enable -- ")
                .words(&to_enable)
                .code(" 2>&1); then err ")
                .int(first as u64)
                .code(" enable \"$out\"; rollback; exit 3; fi\n");
        }
        if !to_start.is_empty() {
            body.code("if ! out=$(systemctl start -- ")
                .words(&to_start)
                .code(" 2>&1 </dev/null); then err ")
                .int(first as u64)
                .code(" start \"$out\"; rollback; exit 3; fi\n");
        }
        for n in &service_steps {
            body.code("ok ").int(*n as u64).code("\n");
            ok_line(&mut printed, n);
        }
    }

    // Handlers, in declared order, once each.
    for h in &input.handlers {
        let n = step(Outcome::Handler {
            name: h.name.clone(),
        }) as u64;
        // A service foobar just started already runs the new configuration.
        if let HandlerCommand::Service { name, .. } = &h.command
            && to_start.contains(&name.as_str())
        {
            body.code("skip ").int(n).code("\n");
            printed.push_str(&format!("SKIP\t{n}\n"));
            continue;
        }
        let cmd = h.command.script();
        body.code("if out=$( { umask 022; ")
            .append(&cmd)
            .code("\n} 2>&1 </dev/null); then ok ")
            .int(n)
            .code("; else\n  first=$out; rollback\n  if out2=$( { umask 022; ")
            .append(&cmd)
            .code("\n} 2>&1 </dev/null); then second='ok after restoring the previous files'; clear_pending; else second=$out2; fi\n  rolled_back ")
            .int(n)
            .code(" \"$first\" \"$second\"\n  exit 3\nfi\n");
        ok_line(&mut printed, n);
    }

    if !input.handlers.is_empty() {
        body.code("clear_pending\n");
    }
    // Old backups and the lock go in one `rm`.
    if !swapped.is_empty() {
        body.append(&crate::remote::backups::prune_backups(input.keep_backups));
    } else if input.unlock {
        body.code("set --\n");
    }
    if input.unlock {
        body.append(&crate::remote::lock::unlock_args(input.run_id));
    }
    if !swapped.is_empty() || input.unlock {
        body.code(crate::remote::backups::REMOVE_ARGS);
    }
    body.code("echo DONE\n");
    printed.push_str("DONE\n");

    let mut s = head::head(play, &staged, &swapped, input.run_id, input.alone);
    if let Some(check) = &input.lock {
        s.append(&crate::remote::lock::lock_check(check));
    }
    s.append(&body);
    Ok(Built {
        script: s,
        steps: steps.into_inner(),
        on_success: printed,
    })
}
