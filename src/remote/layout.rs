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
        for p in [PENDING_FILE, LOCK_DIR, HOLDER, STOP] {
            assert!(p.starts_with(&format!("{STATE_DIR}/")), "{p}");
        }
        assert!(HOLDER.starts_with(LOCK_DIR) && STOP.starts_with(LOCK_DIR));
        assert_eq!(backup_path("r1", "/etc/a"), "/var/backups/foobar/r1/etc/a");
    }
}
