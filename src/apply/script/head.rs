//! The head of a play's script: the prelude, the protocol and helper functions every play
//! script shares, and the play's own pending-handler record, cleanup (its temp files) and
//! rollback (its swapped paths, in reverse). In: the play and what its body staged and
//! swapped. Out: the [`Script`] the body is appended to.

use crate::remote::backups::BACKUP_FUNCTIONS;
use crate::remote::layout::PENDING_FILE;
use crate::remote::layout::backup_path;
use crate::remote::protocol::PROTOCOL;
use crate::render::DesiredPlay;
use crate::shell::Script;

pub(super) use crate::shell::parent;

pub(super) fn base(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, b)| b)
}

pub(crate) const PRELUDE: &str =
    "set -u\numask 077\nexport LC_ALL=C DEBIAN_FRONTEND=noninteractive\nout=\n";

/// Shell helpers for directory and attribute steps: refuse a symbolic link where a directory
/// or a regular file is expected, and never follow one (`chown -h`).
const STEP_FUNCTIONS: &str = r#"ensure_dir() {
  if [ -L "$1" ]; then echo "a symbolic link is where a directory belongs"; return 1; fi
  [ -d "$1" ] || { rm -f -- "$1" && (umask 022 && mkdir -p -- "$1"); } || return 1
  chown -h -- "$2" "$1" && chmod -- "$3" "$1"
}
fix_attributes() {
  if [ -L "$1" ] || [ ! -f "$1" ]; then echo "not a regular file"; return 1; fi
  chown -h -- "$2" "$1" && chmod -- "$3" "$1"
}
"#;

pub(super) struct Staged<'a> {
    /// Step number of the swap.
    pub(super) step: usize,
    /// Index of its `T_<n>` variable.
    pub(super) var: usize,
    pub(super) path: &'a str,
    pub(super) validate: Option<&'a str>,
    pub(super) sensitive: bool,
}

/// `"$T_<n>"`.
pub(super) fn temp_var(s: &mut Script, n: usize) {
    s.code("\"$T_").int(n as u64).code("\"");
}

/// Everything before the play's steps; `staged` and `swapped` as the body built them.
pub(super) fn head(
    play: &DesiredPlay,
    staged: &[Staged<'_>],
    swapped: &[(usize, &str)],
    run_id: &str,
    alone: bool,
) -> Script {
    let mut s = Script::new();
    s.comment(&format!("play {} {}", play.index, play.name))
        .code(PRELUDE)
        .code(PROTOCOL)
        .code(BACKUP_FUNCTIONS)
        .code(STEP_FUNCTIONS);
    // Plays of one host may run side by side (`after:`): then the pending-handler record is
    // changed under a lock. This play's handlers are done (or their files were restored).
    // Builtins where they do: an existing directory and a record holding only this play's
    // handlers (the usual case) cost no process; `grep`/`mv` only keep other plays' lines.
    s.code("pending_dir() { ")
        .parent_dir_made(PENDING_FILE)
        .code("; }\nwith_pending() { pending_dir && ( if command -v flock >/dev/null 2>&1; then flock 9; fi; \"$@\" ) 9>>")
        .code(PENDING_FILE)
        .code(".lock; }\nclear_pending_now() { if [ -f ")
        .code(PENDING_FILE)
        .code(" ]; then other=; while IFS= read -r l || [ -n \"$l\" ]; do case $l in '")
        .int(play.index as u64)
        .code("\t'*) ;; *) other=1;; esac; done < ")
        .code(PENDING_FILE)
        .code("; if [ -z \"$other\" ]; then : > ")
        .code(PENDING_FILE)
        .code("; else grep -v '^")
        .int(play.index as u64)
        .code("\t' ")
        .code(PENDING_FILE)
        .code(" > ")
        .code(PENDING_FILE)
        .code(".new.$$; mv -f -- ")
        .code(PENDING_FILE)
        .code(".new.$$ ")
        .code(PENDING_FILE)
        .code(if alone {
            "; fi; fi; }\nclear_pending() { clear_pending_now; }\ncleanup() {\n"
        } else {
            "; fi; fi; }\nclear_pending() { with_pending clear_pending_now; }\ncleanup() {\n"
        });
    for st in staged {
        s.code("  [ -n \"${T_")
            .int(st.var as u64)
            .code("-}\" ] && rm -f -- ");
        temp_var(&mut s, st.var);
        s.code("\n");
    }
    s.code("  :\n}\nrollback() {\n");
    for (k, path) in swapped.iter().rev() {
        s.code("  [ -n \"${S_")
            .int(*k as u64)
            .code("-}\" ] && restore_one ")
            .word(path)
            .code(" ")
            .word(backup_path(run_id, path))
            .code("\n");
    }
    s.code("  command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload >/dev/null 2>&1\n  :\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_sit_beside_their_destination() {
        assert_eq!(
            parent("/etc/systemd/system/a.service"),
            "/etc/systemd/system"
        );
        assert_eq!(parent("/a"), "/");
        assert_eq!(base("/etc/x y.conf"), "x y.conf");
    }
}
