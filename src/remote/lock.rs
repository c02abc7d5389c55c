//! The host lock on the host: the scripts that take it, check under it and release it.
//!
//! The lock is the holder file [`HOLDER`] (`user@machine pid N since T run ID`, mode 0600).
//! Creating it is the atomic step: the shell's `set -C` opens it with `O_EXCL`, a builtin, so
//! taking the lock starts no process (the directory stays between runs; `mkdir` runs only on a
//! host's first lock). Its text is written right after; the gather reads it back (waiting out
//! that instant) and a run releases only a lock whose holder names its own run id, by removing
//! the holder (and a stop request beside it). When to lock is the apply's policy
//! (`apply::lock`).

use super::backups::REMOVE_ARGS;
use super::layout::{HOLDER, LOCK_DIR, STOP};
use super::section::Section;
use super::sh;
use crate::shell::Script;

/// What a lock script prints first when it took the lock.
pub const LOCKED_MARK: &str = Section::Locked.line();

/// Remove the host's lock if this run holds it.
pub fn unlock_script(run_id: &str) -> Script {
    let mut s = Script::new();
    s.code("set --\n")
        .append(&unlock_args(run_id))
        .code(REMOVE_ARGS);
    s
}

/// Append the lock (the holder, and a stop request before it) to the positional parameters
/// if this run holds it, for one `rm` that may remove more ([`REMOVE_ARGS`]).
pub(crate) fn unlock_args(run_id: &str) -> Script {
    let mut s = Script::new();
    s.code(sh::unlock())
        .code("if holds_lock ")
        .code(HOLDER)
        .code(" ")
        .word(format!("run {run_id}"))
        .code("; then set -- \"$@\" ")
        .code(STOP)
        .code(" ")
        .code(HOLDER)
        .code("; fi\n");
    s
}

/// Take the host's lock (or report who holds it), then gather. Creating the holder is the
/// atomic step; its text is written right after (readers wait out that instant, see the
/// gather), 0600.
pub fn lock_script(holder: &str, break_lock: bool) -> String {
    let mut s = Script::new();
    s.code("# lock\numask 077\n").code(sh::lock()).code("if ");
    take(&mut s, holder, break_lock);
    s.code("; then ")
        .code(Section::Locked.echo())
        .code("; fi\n");
    s.to_stdin().expect("no NUL in the holder")
}

/// The call that takes the lock, for both ways to lock ([`lock_script`], [`lock_check`]):
/// `take_lock` with `break_lock`, the lock's directory, the holder file and its text.
fn take(s: &mut Script, holder: &str, break_lock: bool) {
    s.code("take_lock ")
        .code(if break_lock { "1 " } else { "0 " })
        .code(LOCK_DIR)
        .code(" ")
        .code(HOLDER)
        .code(" ")
        .word(holder.replace('\0', ""));
}

/// The head of a host's first script: take the lock, then re-read the facts the plan was made
/// from and compare their digest with the plan's (compare-and-swap). A host locked by another
/// run prints `LOCKED` and its holder; a host that moved prints `STALE` and releases the lock.
/// Either way the script stops before its first step.
pub struct LockCheck<'a> {
    /// What the lock records: `user@machine pid N since T run ID`.
    pub holder: &'a str,
    pub break_lock: bool,
    /// [`crate::gather::ActualState::cas`] as planned.
    pub cas: &'a str,
    /// The raw facts behind `cas`, when this run gathered them: compared as they are (no
    /// `sha256sum` on the host). A saved plan has only `cas`.
    pub cas_text: Option<&'a str>,
    /// [`crate::gather::facts_script`] for the host's desired state.
    pub facts: Script,
}

/// The head of a host's first script ([`LockCheck`]).
pub(crate) fn lock_check(check: &LockCheck<'_>) -> Script {
    let mut s = Script::new();
    s.code("# lock, then compare the facts the plan was made from\n")
        .code(sh::lock())
        .code("if ! ");
    take(&mut s, check.holder, check.break_lock);
    s.code("; then locked_by ")
        .code(HOLDER)
        .code("; exit 0; fi\nc=$( { ")
        .append(&check.facts);
    match check.cas_text {
        // `$( )` drops trailing newlines: so does the text it is compared with.
        Some(text) => s
            .code("} 2>/dev/null)\nif [ \"$c\" != ")
            .word(text.trim_end_matches('\n')),
        None => s
            .code("} 2>/dev/null | sha256sum)\nif [ \"${c%% *}\" != ")
            .word(check.cas),
    };
    s.code(" ]; then rm -f -- ")
        .code(STOP)
        .code(" ")
        .code(HOLDER)
        .code("; echo STALE; exit 0; fi\n");
    s
}

/// What a dry run sends instead of [`lock_script`]: only reads. It prints the locked mark
/// where the lock script would have taken the lock (no lock, or `--break-lock`), so the same
/// check follows: a host locked by another run, or whose facts moved, fails as it would.
pub fn lock_probe_script(break_lock: bool) -> String {
    let mut s = Script::new();
    s.code("# lock probe\n");
    if break_lock {
        s.code(Section::Locked.echo()).code("\n");
    } else {
        s.code("[ -e ")
            .code(HOLDER)
            .code(" ] || ")
            .code(Section::Locked.echo())
            .code("\n");
    }
    s.to_stdin().expect("foobar's own text")
}

/// The file whose presence tells a host script to start no further play (Ctrl-C): beside the
/// lock's holder, and removed with it when the lock is released.
pub fn stop_file() -> String {
    STOP.to_string()
}

/// Ask the host script of run `run_id` to start no further play: creates [`stop_file`] if
/// the host's lock is this run's.
pub fn stop_script(run_id: &str) -> Script {
    let mut s = Script::new();
    s.code("if grep -q -F -- ")
        .word(format!("run {run_id}"))
        .code(" ")
        .code(HOLDER)
        .code(" 2>/dev/null; then : > ")
        .word(stop_file())
        .code("; fi\n");
    s
}
