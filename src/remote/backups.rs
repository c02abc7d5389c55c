//! Backups and restore, one implementation for an apply's rollback and a rollout's restore,
//! and the pruning of old runs' backups.

use super::layout::{BACKUP_ROOT, backup_path};
use crate::shell::Script;

/// How many runs' backups a host keeps unless the playbook says `keep_backups:`.
pub const DEFAULT_KEEP_BACKUPS: u32 = 5;

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
/// built by [`super::handlers::handler_command`]), and prints `RESTORED`. A rollout's restore after a failed
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
