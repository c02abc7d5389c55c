//! A host script: all of a host's plays of a phase in one remote command; between plays it
//! stops when asked to ([`stop_file`], Ctrl-C).
//!
//! In: each play's built script ([`super::script::build`]), the lock's check for the host's
//! first script ([`LockCheck`]), the run id. Out: one [`Script`], and what it prints when
//! every play succeeds (a dry run's answer). Holds: a play that fails ends the script; the
//! lock is released only by the script that was told to (`unlock`).

use crate::remote::lock::{LockCheck, lock_check, stop_file, unlock_script};
use crate::shell::Script;

/// All of a host's plays of a phase in one script, one round trip: the lock and the facts'
/// compare-and-swap first (`lock`), then each play's own script ([`super::script::build`]) in a shell of its
/// own, in order, each announced by `PLAY <index>`. A play that fails ends the script;
/// between plays the script stops (releasing the lock, `STOPPED`) if [`stop_file`] exists.
/// With `unlock` it releases the lock after the last play and prints `UNLOCKED`.
pub fn host_script(
    plays: &[(usize, Script)],
    lock: Option<&LockCheck<'_>>,
    run_id: &str,
    unlock: bool,
) -> Script {
    let mut s = Script::new();
    s.comment("host script").code(super::script::PRELUDE);
    if let Some(check) = lock {
        s.append(&lock_check(check));
    }
    for (i, (index, play)) in plays.iter().enumerate() {
        if i > 0 {
            s.code("if [ -e ")
                .word(stop_file())
                .code(" ]; then\n")
                .append(&unlock_script(run_id))
                .code("echo STOPPED; exit 0; fi\n");
        }
        // Each play is a shell of its own, fed its script as `sh -s` is fed a play's script
        // alone (same stdin rules, same `$$`): a play that dies ends the host script. The
        // here-document's end is a random number no play text can guess, and that no value
        // in the play (a body travels as text) holds.
        let token = loop {
            let mut token = [0u8; 8];
            getrandom::fill(&mut token).expect("the system's random number generator");
            let token = u64::from_le_bytes(token);
            if !play.mentions(&format!("__FOOBAR_PLAY_{token}__")) {
                break token;
            }
        };
        s.code("printf 'PLAY\\t%s\\n' ")
            .int(*index as u64)
            .code("\nsh -s <<'__FOOBAR_PLAY_")
            .int(token)
            .code("__'\n")
            .append(play)
            .code("__FOOBAR_PLAY_")
            .int(token)
            .code("__\nrc=$?; [ $rc -eq 0 ] || exit $rc\n");
    }
    if unlock {
        s.append(&unlock_script(run_id)).code("echo UNLOCKED\n");
    }
    s
}

/// What [`host_script`] prints when every play succeeds: each play's `PLAY <index>` and its
/// own [`super::script::Built::on_success`], then `UNLOCKED` with `unlock`.
pub fn host_script_on_success(plays: &[(usize, &str)], unlock: bool) -> String {
    let mut out = String::new();
    for (index, printed) in plays {
        out.push_str(&format!("PLAY\t{index}\n{printed}"));
    }
    if unlock {
        out.push_str("UNLOCKED\n");
    }
    out
}
