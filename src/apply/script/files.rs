//! The file steps of a play's script: stage each new body in a temp file beside its
//! destination, back up what the swaps will replace, all with as few processes as the shell
//! allows (on a first apply or a small change, the processes a script starts are most of
//! the time a host spends).
//!
//! What costs a process, and what does not:
//! - a missing parent directory: one `mkdir -p` for all of a play's missing ones; an existing
//!   one costs nothing (`[ -d ]` is a builtin);
//! - a text body (UTF-8, no NUL: every template) is written by the shell's own `printf '%s'`
//!   from one quoted word ([`Script::text`]), under the `umask` that gives the file its mode,
//!   into a name made of 64 random bits that must not exist (`set -C`: `O_EXCL`); another
//!   body goes through `base64 -d`, as before;
//! - `chown` only when the file is not already owned as it should be: a script runs as root
//!   (uid 0, gid 0: foobar's contract, `become:` or a root login), so a new file is already
//!   `root:root` unless its directory is set-group-ID, which `[ -O ]`/`[ -G ]` see; `chmod`
//!   only for modes a `umask` cannot give (execute and special bits);
//! - backups: one `cp -a --parents` for every path the play replaces that exists, into the
//!   run's directory (made once per run).
//!
//! What does not change: a file is written in full and fsynced before it is renamed over its
//! destination; a temp file is never an existing path, and never a symbolic link when it is
//! used; cleanup removes only this script's temp files.

use std::sync::Arc;

use super::head::{base, parent, temp_var};
use crate::remote::layout::backup_path;
use crate::shell::{self, Script};

/// One new body to stage.
pub(super) struct NewBody<'a> {
    /// Step number (its `ERR` lines).
    pub(super) step: usize,
    /// Index of its `T_<n>` variable.
    pub(super) var: usize,
    pub(super) path: &'a str,
    pub(super) bytes: Arc<[u8]>,
    pub(super) mode: u32,
    pub(super) owner: &'a str,
    pub(super) group: &'a str,
}

/// The temp file for `path`: beside it (so the rename is atomic), hidden, unguessable
/// (`salt` is 64 random bits per script), and ending in the file's own name so validators
/// that look at the extension still work (within the length a file name may have).
pub(super) fn temp_name(path: &str, salt: u64, var: usize) -> String {
    let dir = parent(path).trim_end_matches('/');
    let b = base(path);
    if b.len() <= 200 {
        format!("{dir}/.foobar-{salt:016x}-{var}.{b}")
    } else {
        format!("{dir}/.foobar-{salt:016x}-{var}")
    }
}

/// The `umask` under which a new file (created 0666 by the shell) gets exactly `mode`, if
/// one does: only modes within 0666.
fn umask_for(mode: u32) -> Option<u32> {
    (mode & !0o666 == 0).then_some(0o777 & !mode)
}

/// Stage `bodies`: their missing parent directories (one `mkdir -p`), then each body in its
/// temp file `T_<var>`, owned and moded as it should be. Any failure prints `ERR <step>
/// stage`, removes what was staged and ends the script (nothing live changed yet).
pub(super) fn stage(body: &mut Script, bodies: &[NewBody<'_>], salt: u64) {
    let Some(first) = bodies.first() else {
        return;
    };
    let mut dirs: Vec<&str> = bodies.iter().map(|b| parent(b.path)).collect();
    dirs.sort();
    dirs.dedup();
    body.code("set --\n");
    for d in &dirs {
        body.code("[ -d ")
            .word(d)
            .code(" ] || set -- \"$@\" ")
            .word(d)
            .code("\n");
    }
    body.code("if [ $# -gt 0 ] && ! out=$(umask 022 && mkdir -p -- \"$@\" 2>&1); then err ")
        .int(first.step as u64)
        .code(" stage \"$out\"; exit 1; fi\n");
    for b in bodies {
        let n = b.step as u64;
        body.code("T_")
            .int(b.var as u64)
            .code("=")
            .word(temp_name(b.path, salt, b.var))
            .code("\nif [ -e ");
        temp_var(body, b.var);
        body.code(" ] || [ -L ");
        temp_var(body, b.var);
        body.code(" ]; then T_")
            .int(b.var as u64)
            .code("=; err ")
            .int(n)
            .code(" stage 'the temporary name is taken'; cleanup; exit 1; fi\n");
        let text = shell::is_text(&b.bytes);
        if text {
            // The write happens in the command substitution's shell (a fork, no program):
            // its umask and `set -C` end with it.
            body.code("if ! out=$( { umask ")
                .octal(umask_for(b.mode).unwrap_or(0o077))
                .code("; set -C; printf '%s' ")
                .text(b.bytes.clone())
                .code(" > ");
            temp_var(body, b.var);
            body.code("; } 2>&1); then err ")
                .int(n)
                .code(" stage \"$out\"; cleanup; exit 1; fi\n");
        } else {
            body.code("if ! out=$( { set -C; : > ");
            temp_var(body, b.var);
            body.code("; } 2>&1); then err ")
                .int(n)
                .code(" stage \"$out\"; cleanup; exit 1; fi\nbase64 -d > ");
            temp_var(body, b.var);
            body.code(" ").data(b.bytes.clone());
            body.code("[ $? -eq 0 ] || { err ")
                .int(n)
                .code(" stage 'cannot write the new file'; cleanup; exit 1; }\n");
        }
        // Never a symbolic link from here on; the owner and mode it should have.
        body.code("if [ -L ");
        temp_var(body, b.var);
        body.code(" ]");
        let root = b.owner == "root" && b.group == "root";
        if root {
            body.code(" || { ! { [ -O ");
            temp_var(body, b.var);
            body.code(" ] && [ -G ");
            temp_var(body, b.var);
            body.code(" ]; } && ! out=$(chown -h -- root:root ");
            temp_var(body, b.var);
            body.code(" 2>&1); }");
        } else {
            body.code(" || ! out=$(chown -h -- ")
                .word(format!("{}:{}", b.owner, b.group))
                .code(" ");
            temp_var(body, b.var);
            body.code(" 2>&1)");
        }
        if !text || umask_for(b.mode).is_none() {
            body.code(" || ! out=$(chmod -- ").octal(b.mode).code(" ");
            temp_var(body, b.var);
            body.code(" 2>&1)");
        }
        body.code("; then err ").int(n).code(
            " stage \"${out:-a symbolic link replaced the temporary file}\"; cleanup; exit 1; fi\n",
        );
    }
}

/// Back up every path of `paths` (step, path, sensitive) that exists, before the first
/// swap: one `mkdir -p` and one `cp -a --parents` (from `/`) into the run's directory; a sensitive file's copy is then made
/// 0600 with its mode kept beside it. A failure prints `ERR <first step> backup`, removes the
/// temp files and ends the script (nothing live changed yet).
pub(super) fn backup(body: &mut Script, paths: &[(usize, &str, bool)], run_id: &str) {
    let Some(&(first, _, _)) = paths.first() else {
        return;
    };
    body.code("set --\n");
    for (_, p, _) in paths {
        body.code("{ [ -e ")
            .word(p)
            .code(" ] || [ -L ")
            .word(p)
            .code(" ]; } && set -- \"$@\" ")
            .word(p)
            .code("\n");
    }
    // Every directory the copies go in is made first by `mkdir -p`, which takes a directory
    // that appears meanwhile in its stride: plays side by side back up into the same run's
    // directory, and `cp --parents` fails on a directory another `cp` just made.
    let mut dirs: Vec<String> = paths
        .iter()
        .map(|(_, p, _)| backup_path(run_id, parent(p).trim_end_matches('/')))
        .collect();
    dirs.sort();
    dirs.dedup();
    body.code("if [ $# -gt 0 ] && ! out=$(mkdir -p -- ")
        .words(&dirs)
        .code(" && cd / && cp -a --parents -- \"$@\" ")
        .word(backup_path(run_id, ""))
        .code(" 2>&1); then err ")
        .int(first as u64)
        .code(" backup \"$out\"; cleanup; exit 1; fi\n");
    for (n, p, sensitive) in paths {
        if !sensitive {
            continue;
        }
        body.code("if { [ -e ")
            .word(p)
            .code(" ] || [ -L ")
            .word(p)
            .code(" ]; } && ! out=$(protect_backup ")
            .word(p)
            .code(" ")
            .word(backup_path(run_id, p))
            .code(" 2>&1); then err ")
            .int(*n as u64)
            .code(" backup \"$out\"; cleanup; exit 1; fi\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_umask_gives_exactly_the_modes_within_0666() {
        assert_eq!(umask_for(0o644), Some(0o133));
        assert_eq!(umask_for(0o640), Some(0o137));
        assert_eq!(umask_for(0o600), Some(0o177));
        assert_eq!(umask_for(0o666), Some(0o111));
        assert_eq!(umask_for(0o755), None);
        assert_eq!(umask_for(0o4644), None);
        assert_eq!(umask_for(0o1644), None);
        for mode in [0o644, 0o640, 0o600, 0o444, 0o400, 0o660, 0o000] {
            assert_eq!(0o666 & !umask_for(mode).unwrap(), mode, "{mode:o}");
        }
    }

    #[test]
    fn temp_names_sit_beside_their_destination_and_keep_its_name() {
        assert_eq!(
            temp_name("/etc/nginx/sites-available/app.conf", 0xab, 2),
            "/etc/nginx/sites-available/.foobar-00000000000000ab-2.app.conf"
        );
        assert_eq!(temp_name("/x", 1, 0), "/.foobar-0000000000000001-0.x");
        let long = format!("/etc/{}", "a".repeat(240));
        assert_eq!(temp_name(&long, 1, 0), "/etc/.foobar-0000000000000001-0");
    }
}
