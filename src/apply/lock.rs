//! The lock's policy: what the holder says (who, which run), when an apply takes it and what
//! it checks under it (facts unchanged since the plan), releasing it, and run ids. The
//! scripts that take and release it on a host are [`crate::remote::lock`]'s.

use std::time::Duration;

use super::error::ApplyError;
use super::{ApplyOptions, Target};
use crate::gather;
use crate::plan::HostPlan;
use crate::remote::lock::{lock_probe_script, lock_script, unlock_script};
use crate::transport::{Effect, RemoteCommand, Transport};

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
