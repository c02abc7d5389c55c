//! The host lock, in one place: its directory and holder file on the host, the scripts that
//! take and release it, what the holder says (who, which run), the check an apply makes under
//! it (facts unchanged since the plan), and run ids.
//!
//! The lock is the holder file `/var/lib/foobar/lock/holder` (`user@machine pid N since T run
//! ID`, mode 0600). Creating it is the atomic step: the shell's `set -C` opens it with
//! `O_EXCL`, a builtin, so taking the lock starts no process (the directory stays between
//! runs; `mkdir` runs only on a host's first lock). Its text is written right after; the gather
//! reads it back (waiting out that instant) and a run releases only a lock whose holder names
//! its own run id, by removing the holder (and a stop request beside it).

use std::time::Duration;

use super::error::ApplyError;
use super::{ApplyOptions, Target};
use crate::gather;
use crate::plan::HostPlan;
use crate::shell::Script;
use crate::transport::{Effect, RemoteCommand, Transport};

/// The lock's directory on a host: the holder file and a stop request live inside.
pub const LOCK_DIR: &str = "/var/lib/foobar/lock";
/// The lock itself: whoever created this file holds the host.
pub const HOLDER: &str = "/var/lib/foobar/lock/holder";
/// A request to the run holding the lock to start no further play (Ctrl-C): removed with the
/// holder when the lock is released.
pub const STOP: &str = "/var/lib/foobar/lock/stop";
/// What a lock script prints first when it took the lock.
pub const LOCKED_MARK: &str = "#foobar:locked\n";

/// Who this process is, for a lock it takes: `user@machine pid N since <run's start>`.
pub fn holder(run_id: &str) -> String {
    format!(
        "{}@{} pid {} since {}",
        std::env::var("USER").unwrap_or_else(|_| "root".into()),
        machine_name(),
        std::process::id(),
        run_id.split('-').next().unwrap_or("")
    )
}

/// What a lock records: who, and which run (the run id lets the run release it).
pub fn lock_holder(holder: &str, run_id: &str) -> String {
    format!("{holder} run {run_id}")
}

pub fn lock_message(holder: &str) -> String {
    // A holder on this machine whose process is gone left the lock behind when it died.
    let me = machine_name();
    let dead = holder
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0] == "pid")
        .and_then(|w| w[1].parse::<u32>().ok())
        .filter(|_| holder.contains(&format!("@{me} ")))
        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
    if dead {
        format!(
            "locked by a run that is no longer alive ({holder}); run again with --break-lock to take the lock over"
        )
    } else {
        format!(
            "locked by another run ({holder}); wait for it to finish, or if it died, run again with --break-lock"
        )
    }
}

/// A new run's id: the UTC time (so backups sort by age) and 64 random bits (so nobody can
/// predict a run's names or forge its lock), e.g. `20260101T120000Z-1f2e3d4c5b6a7980`.
pub fn new_run_id() -> String {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the system's random number generator");
    format!(
        "{}-{}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
        hex::encode(random)
    )
}

pub fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Remove the host's lock if this run holds it.
pub fn unlock_script(run_id: &str) -> Script {
    let mut s = Script::new();
    s.code("set --\n")
        .append(&unlock_args(run_id))
        .code(crate::shell::REMOVE_ARGS);
    s
}

/// Append the lock (the holder, and a stop request before it) to the positional parameters
/// if this run holds it, for one `rm` that may remove more ([`crate::shell::REMOVE_ARGS`]).
pub(super) fn unlock_args(run_id: &str) -> Script {
    let mut s = Script::new();
    // `read` and `case` are builtins: checking the holder costs no process.
    s.code("h=; { while IFS= read -r l || [ -n \"$l\" ]; do h=\"$h $l\"; done < ")
        .code(HOLDER)
        .code("; } 2>/dev/null; case $h in *")
        .word(format!("run {run_id}"))
        .code("*) set -- \"$@\" ")
        .code(STOP)
        .code(" ")
        .code(HOLDER)
        .code(";; esac\n");
    s
}

/// Take the host's lock (or report who holds it), then gather. Creating the holder is the
/// atomic step; its text is written right after (readers wait out that instant, see the
/// gather), 0600.
pub fn lock_script(holder: &str, break_lock: bool) -> String {
    let mut s = Script::new();
    s.code("# lock\numask 077\n");
    take(&mut s, holder, break_lock);
    s.code("; echo '#foobar:locked'; fi\n");
    s.to_stdin().expect("no NUL in the holder")
}

/// The atomic step of both ways to lock ([`lock_script`], [`lock_check`]): with
/// `break_lock` remove any lock first, make the directory, and create the holder exclusively
/// (`set -C`: `O_EXCL`) with its text. Leaves an `if` open (after `then`) for the caller.
fn take(s: &mut Script, holder: &str, break_lock: bool) {
    if break_lock {
        s.code("rm -rf -- ").code(LOCK_DIR).code("\n");
    }
    // An existing directory (every run after the host's first) costs no process, and
    // neither does the exclusive create: `set -C` and `printf` are builtins, and a failed
    // redirection only fails `printf` (not a special builtin: the shell goes on).
    s.code("{ [ -d ")
        .code(LOCK_DIR)
        .code(" ] || mkdir -p -- ")
        .code(LOCK_DIR)
        .code("; } 2>/dev/null\nset -C; { printf '%s\\n' ")
        .word(holder.replace('\0', ""))
        .code(" > ")
        .code(HOLDER)
        .code("; } 2>/dev/null; took=$?; set +C\nif [ $took -eq 0 ]; then :");
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
pub(super) fn lock_check(check: &LockCheck<'_>) -> Script {
    let mut s = Script::new();
    s.code("# lock, then compare the facts the plan was made from\n");
    take(&mut s, check.holder, check.break_lock);
    s.code("\nelse\n  n=0; while [ -e ")
        .code(HOLDER)
        .code(" ] && [ ! -s ")
        .code(HOLDER)
        .code(
            " ] && [ $n -lt 20 ]; do sleep 0.1; n=$((n+1)); done\n  printf 'LOCKED\\t'; { cat -- ",
        )
        .code(HOLDER)
        .code(" 2>/dev/null || :; } | base64 -w0; echo; exit 0\nfi\nc=$( { ")
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
        s.code("echo '#foobar:locked'\n");
    } else {
        s.code("[ -e ")
            .code(HOLDER)
            .code(" ] || echo '#foobar:locked'\n");
    }
    s.to_stdin().expect("foobar's own text")
}

pub(super) async fn lock_and_check(
    t: &Target<'_>,
    hp: &HostPlan,
    options: &ApplyOptions,
) -> Result<(), ApplyError> {
    let (locked, state) = if options.dry_run {
        let script = format!(
            "{}{}",
            lock_probe_script(options.break_lock),
            gather::gather_script(t.desired, None)
        );
        let out = t
            .transport
            .run_with(
                &RemoteCommand::script(options.timeout),
                Some(script.as_bytes()),
                &Effect::Reads,
            )
            .await?;
        if !out.success() {
            return Err(gather::GatherError::Script {
                host: t.transport.host().to_string(),
                code: out.code,
                stderr: out.stderr_text().trim().to_string(),
            }
            .into());
        }
        gather::parse_output(t.transport.host().as_str(), &out.stdout)?
    } else {
        let lock = lock_script(&options.lock_holder(), options.break_lock);
        gather::gather_locked(
            t.transport.as_ref(),
            t.desired,
            None,
            options.timeout,
            &lock,
        )
        .await?
    };
    if !locked {
        return Err(ApplyError::Locked {
            holder: state.lock.unwrap_or_else(|| "unknown holder".into()),
        });
    }
    if state.digest != hp.facts_digest {
        unlock(t.transport.as_ref(), &options.run_id).await;
        return Err(ApplyError::Stale);
    }
    Ok(())
}

/// Release the host's lock if this run holds it. Best effort: a lock left behind names its
/// holder, and `--break-lock` takes it over.
pub async fn unlock(transport: &dyn Transport, run_id: &str) {
    let Ok(s) = unlock_script(run_id).to_stdin() else {
        return;
    };
    let _ = transport
        .run_with(
            &RemoteCommand::script(Duration::from_secs(30)),
            Some(s.as_bytes()),
            &Effect::Changes {
                on_success: String::new(),
            },
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_a_utc_timestamp_and_64_random_bits() {
        let id = new_run_id();
        let (stamp, random) = id.split_once('-').expect("stamp-random");
        assert_eq!(stamp.len(), 16, "{stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
            "{stamp}"
        );
        assert_eq!(random.len(), 16, "{random}");
        assert!(random.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(new_run_id(), id, "two runs share an id");
    }
}
