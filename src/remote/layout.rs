//! Where foobar keeps its own files on a host: every path is derived from [`STATE_DIR`] (what
//! a run leaves for the next: the lock, pending handlers) or [`BACKUP_ROOT`] (the files runs
//! replaced). They are `&'static str` so scripts can carry them as code
//! ([`crate::shell::Script::code`]).

/// The one state directory; the literal every other path here is built from (`concat!` needs
/// a literal, so it is a macro).
macro_rules! state_dir {
    () => {
        "/var/lib/foobar"
    };
}

/// foobar's state on a host.
pub const STATE_DIR: &str = state_dir!();

/// `(play index, handler name)` lines of handlers a run owed when it stopped: the next run
/// runs them.
pub const PENDING_FILE: &str = concat!(state_dir!(), "/pending-handlers");

/// The lock's directory: the holder file and a stop request live inside.
pub const LOCK_DIR: &str = concat!(state_dir!(), "/lock");

/// The lock itself: whoever created this file holds the host.
pub const HOLDER: &str = concat!(state_dir!(), "/lock/holder");

/// A request to the run holding the lock to start no further play (Ctrl-C): removed with the
/// holder when the lock is released.
pub const STOP: &str = concat!(state_dir!(), "/lock/stop");

/// The firewall's state (foobar-firewall-load's): the ruleset last confirmed
/// ([`FIREWALL_CONFIRMED`], what the host loads at boot) and the digest of its listing.
pub const FIREWALL_STATE: &str = concat!(state_dir!(), "/firewall");

/// The confirmed ruleset: written only when foobar confirms a change over a new connection.
pub const FIREWALL_CONFIRMED: &str = concat!(state_dir!(), "/firewall/confirmed.nft");

/// The PID of a pending change's rollback timer: under /run, so a reboot (which kills the
/// timer) forgets it too.
pub const FIREWALL_TIMER: &str = "/run/foobar-firewall/timer.pid";

/// Where the firewall play installs its loader; a handler that runs it loads a ruleset with
/// confirm-or-rollback.
pub const FIREWALL_LOADER: &str = "/usr/local/sbin/foobar-firewall-load";

/// foobar's nftables table: the ruleset's own, and what `plan` compares.
pub const FIREWALL_TABLE: &str = "inet foobar";

/// Where each run keeps the files it replaced, one directory per run (root only).
pub const BACKUP_ROOT: &str = "/var/backups/foobar";

/// Where `run_id` keeps the backup of `path` on the host.
pub fn backup_path(run_id: &str, path: &str) -> String {
    format!("{BACKUP_ROOT}/{run_id}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_path_is_under_the_state_directory() {
        for p in [PENDING_FILE, LOCK_DIR, HOLDER, STOP, FIREWALL_STATE] {
            assert!(p.starts_with(&format!("{STATE_DIR}/")), "{p}");
        }
        assert!(HOLDER.starts_with(LOCK_DIR) && STOP.starts_with(LOCK_DIR));
        assert!(FIREWALL_CONFIRMED.starts_with(FIREWALL_STATE));
        assert_eq!(backup_path("r1", "/etc/a"), "/var/backups/foobar/r1/etc/a");
    }
}
