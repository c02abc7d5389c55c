//! Backups: what the backup host holds, which backup a point-in-time restore starts from,
//! and whether backups and the binary log archive are healthy.
//!
//! In: the inventory's [`Backups`], text read from the backup host and the primary by the
//! scripts built here (every value in them passes through [`crate::shell::sh_quote`]). Out: typed
//! [`BackupRecord`]s, a [`RestorePlan`] and [`Check`]s for `verify`. The work on the hosts is
//! done by the scripts `foobar apply` installs there (templates/backup/): `foobar-backup` (run
//! under flock by the timer's service and by `foobar backup now`), `foobar-restore` and the
//! archive. A backup is good only once its `backup.json` exists (written last, by rename).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Diagnostic;
use crate::inventory::{Backups, HostName};
use crate::mysql::Check;
use crate::shell::Script;
use crate::transport::{RemoteCommand, Transport};

pub const FORMAT_VERSION: u32 = 1;

/// The command the timer's service runs; `foobar backup now` runs exactly this.
pub const BACKUP_COMMAND: &str = "/usr/bin/flock --nonblock --conflict-exit-code 75 /run/foobar-backup.lock /usr/local/sbin/foobar-backup";
/// `flock`'s exit code when another run holds the lock.
pub const BUSY_EXIT: i32 = 75;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub ok: bool,
    pub tables: u64,
    pub checked_at: i64,
    pub seconds: u64,
    pub detail: String,
}

/// What `backup.json` says (written by `foobar-backup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupMeta {
    pub id: String,
    pub host: String,
    pub tool: String,
    pub started: i64,
    pub finished: i64,
    pub seconds: u64,
    pub size_bytes: u64,
    pub gtid: String,
    pub binlog_file: String,
    pub binlog_position: u64,
}

/// One directory under `<dir>/backups`: good when `meta` is there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupRecord {
    pub id: String,
    pub good: bool,
    #[serde(flatten)]
    pub meta: Option<BackupMeta>,
    pub verified: Option<Verified>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot understand the backup listing from {host}: {detail}")]
    Listing { host: HostName, detail: String },
    #[error("`{0}` is neither a time nor a GTID")]
    BadTarget(String),
    #[error("no good backup was finished before {target}{oldest}")]
    NothingBefore { target: String, oldest: String },
    #[error("--dir {0} is not a plain absolute path")]
    ScratchNotPlain(String),
    #[error("--dir {dir} is (inside) {live}")]
    ScratchIsLive { dir: String, live: &'static str },
    #[error("the primary writes no binary log (SHOW MASTER STATUS is empty)")]
    NoBinaryLog,
    #[error("cannot read SHOW MASTER STATUS: {0:?}")]
    MasterStatus(String),
}

impl Diagnostic for BackupError {
    fn hint(&self) -> Option<String> {
        Some(
            match self {
                BackupError::Listing { .. } => {
                    "run `foobar apply` so the backup scripts match this foobar"
                }
                BackupError::BadTarget(_) => {
                    "give a UTC time such as `2026-11-29 20:30:00` or `@1795982400`, or a GTID such as `0-1-42`"
                }
                BackupError::NothingBefore { .. } => {
                    "restore to a later point, or see what there is with `foobar backup list`"
                }
                BackupError::ScratchNotPlain(_) | BackupError::ScratchIsLive { .. } => {
                    "name a new directory such as /var/tmp/foobar-restore"
                }
                BackupError::NoBinaryLog | BackupError::MasterStatus(_) => {
                    "enable log_bin on the primary (templates/mysql/primary.cnf.j2)"
                }
            }
            .to_string(),
        )
    }
}

/// The script that lists every backup directory with its metadata.
pub fn listing_script(b: &Backups) -> Script {
    let mut s = Script::new();
    s.code("DIR=").word(&b.dir).code(
        "\ncd \"$DIR/backups\" 2>/dev/null || exit 0\nfor b in $(ls -1 | sort); do\n  echo \"#backup $b\"\n  if [ -e \"$b/backup.json\" ]; then echo '#meta'; cat \"$b/backup.json\"; fi\n  if [ -e \"$b/verified.json\" ]; then echo '#verified'; cat \"$b/verified.json\"; fi\ndone\n",
    );
    s
}

pub fn parse_listing(host: &HostName, text: &str) -> Result<Vec<BackupRecord>, BackupError> {
    let bad = |detail: String| BackupError::Listing {
        host: host.clone(),
        detail,
    };
    let mut out: Vec<BackupRecord> = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("#backup ") {
            out.push(BackupRecord {
                id: id.trim().to_string(),
                good: false,
                meta: None,
                verified: None,
            });
            section = "";
            continue;
        }
        if line == "#meta" || line == "#verified" {
            section = if line == "#meta" { "meta" } else { "verified" };
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let Some(current) = out.last_mut() else {
            return Err(bad(format!("unexpected line {line:?}")));
        };
        match section {
            "meta" => {
                let meta: BackupMeta = serde_json::from_str(line)
                    .map_err(|e| bad(format!("backup.json of {}: {e}", current.id)))?;
                current.good = true;
                current.meta = Some(meta);
            }
            "verified" => {
                let v: Verified = serde_json::from_str(line)
                    .map_err(|e| bad(format!("verified.json of {}: {e}", current.id)))?;
                current.verified = Some(v);
            }
            _ => return Err(bad(format!("unexpected line {line:?}"))),
        }
    }
    Ok(out)
}

/// Where a point-in-time restore stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    /// Every transaction committed at or before this second (Unix time, UTC).
    Time(i64),
    /// Up to and including this GTID.
    Gtid { domain: u32, server: u32, seq: u64 },
}

impl RestoreTarget {
    /// `2026-11-29 20:30:00` (UTC), `2026-11-29T20:30:00Z`, `@1790000000`, or a GTID `0-1-42`.
    pub fn parse(text: &str) -> Result<Self, BackupError> {
        let t = text.trim();
        let bad = || BackupError::BadTarget(text.to_string());
        let parts: Vec<&str> = t.split('-').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Ok(Self::Gtid {
                domain: parts[0].parse().map_err(|_| bad())?,
                server: parts[1].parse().map_err(|_| bad())?,
                seq: parts[2].parse().map_err(|_| bad())?,
            });
        }
        if let Some(secs) = t.strip_prefix('@') {
            return secs.parse().map(Self::Time).map_err(|_| bad());
        }
        if let Ok(ts) = t.parse::<jiff::Timestamp>() {
            return Ok(Self::Time(ts.as_second()));
        }
        let civil: jiff::civil::DateTime = t.parse().map_err(|_| bad())?;
        let ts = jiff::tz::TimeZone::UTC
            .to_timestamp(civil)
            .map_err(|_| bad())?;
        Ok(Self::Time(ts.as_second()))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Time(t) => format!("{} UTC", utc(*t)),
            Self::Gtid {
                domain,
                server,
                seq,
            } => format!("GTID {domain}-{server}-{seq}"),
        }
    }

    /// The arguments `foobar-restore restore` takes after the backup and scratch directory.
    /// A time becomes `--stop-datetime` one second later: binary log timestamps are whole
    /// seconds and the stop is exclusive, so every event of the target second is replayed.
    pub fn stop_args(&self) -> [String; 2] {
        match self {
            Self::Time(t) => ["time".into(), utc(t + 1)],
            Self::Gtid {
                domain,
                server,
                seq,
            } => ["gtid".into(), format!("{domain}-{server}-{seq}")],
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// `domain-server-seq` of a backup's GTID position in `domain` (a list may name several).
fn gtid_seq(list: &str, domain: u32) -> Option<u64> {
    list.split(',').find_map(|g| {
        let p: Vec<&str> = g.trim().split('-').collect();
        (p.len() == 3 && p[0].parse::<u32>().ok()? == domain)
            .then(|| p[2].parse().ok())
            .flatten()
    })
}

/// The newest good backup a restore to `target` can start from.
pub fn choose<'a>(
    records: &'a [BackupRecord],
    target: &RestoreTarget,
) -> Result<&'a BackupRecord, BackupError> {
    let good = || records.iter().filter(|r| r.good);
    let fits = |r: &BackupRecord| {
        let m = r.meta.as_ref().expect("good backups have metadata");
        match target {
            RestoreTarget::Time(t) => m.finished <= *t,
            RestoreTarget::Gtid { domain, seq, .. } => {
                gtid_seq(&m.gtid, *domain).is_some_and(|s| s <= *seq)
            }
        }
    };
    good()
        .filter(|r| fits(r))
        .max_by_key(|r| r.meta.as_ref().map(|m| m.finished))
        .ok_or_else(|| BackupError::NothingBefore {
            target: target.describe(),
            oldest: match good().min_by_key(|r| r.meta.as_ref().map(|m| m.finished)) {
                Some(r) => {
                    let m = r.meta.as_ref().expect("good");
                    format!(
                        "; the oldest good backup, {}, finished at {} UTC at GTID {}",
                        r.id,
                        utc(m.finished),
                        m.gtid
                    )
                }
                None => "; there is no good backup at all".into(),
            },
        })
}

/// What a restore will do, shown before it does it.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub host: HostName,
    pub backup: String,
    pub backup_gtid: String,
    pub backup_finished: String,
    pub target: String,
    pub scratch: String,
}

impl RestorePlan {
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!(
                "restore backup {} (finished {} UTC, GTID {}) on {}",
                self.backup, self.backup_finished, self.backup_gtid, self.host
            ),
            format!(
                "into {} (a private server on {}/mysqld.sock, no network; the live server is not touched)",
                self.scratch, self.scratch
            ),
            format!(
                "replay the archived binary logs from GTID {} up to {}",
                self.backup_gtid, self.target
            ),
        ]
    }

    /// The script that does it; its last line is `restored <dir> <socket> <gtid>`.
    pub fn script(&self, backups: &Backups, target: &RestoreTarget) -> Script {
        let [kind, value] = target.stop_args();
        let mut s = Script::new();
        s.code("/usr/local/sbin/foobar-restore restore ")
            .words([
                format!("{}/backups/{}", backups.dir, self.backup),
                self.scratch.clone(),
                kind,
                value,
            ])
            .code("\n");
        s
    }
}

/// A scratch directory given with `--dir`: a plain absolute path away from the live data.
pub fn check_scratch_dir(dir: &str) -> Result<(), BackupError> {
    let plain = dir.starts_with('/')
        && dir.len() > 1
        && !dir.split('/').any(|c| c == "..")
        && dir
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'));
    if !plain {
        return Err(BackupError::ScratchNotPlain(dir.to_string()));
    }
    let d = dir.trim_end_matches('/');
    for live in ["/var/lib/mysql", "/etc", "/usr", "/"] {
        if d == live.trim_end_matches('/') || (live != "/" && d.starts_with(&format!("{live}/"))) {
            return Err(BackupError::ScratchIsLive {
                dir: dir.to_string(),
                live,
            });
        }
    }
    Ok(())
}

/// Run a script on a host with `bash -s`; stdout on success, stdout+stderr in the error.
pub async fn run_script(
    t: &dyn Transport,
    script: &Script,
    timeout: Duration,
) -> Result<String, (Option<i32>, String)> {
    let cmd = RemoteCommand {
        command_line: "bash -s".into(),
        timeout,
    };
    let text = script.to_stdin().map_err(|e| (None, e.to_string()))?;
    match t.run(&cmd, Some(text.as_bytes())).await {
        Ok(o) if o.success() => Ok(o.stdout_text()),
        Ok(o) => Err((
            o.code,
            format!("{}{}", o.stdout_text(), o.stderr_text())
                .trim()
                .to_string(),
        )),
        Err(e) => Err((None, e.to_string())),
    }
}

/// How far the archive is behind: the primary's current binary log and position, and the
/// archived file's size (None: not archived at all).
pub fn archive_lag(
    primary_status: &str,
    archived: &str,
) -> Result<(String, u64, Option<u64>), BackupError> {
    let line = primary_status
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or(BackupError::NoBinaryLog)?;
    let mut f = line.split('\t');
    let file = f.next().unwrap_or_default().to_string();
    let pos: u64 = f
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| BackupError::MasterStatus(line.to_string()))?;
    let size = archived.lines().find_map(|l| {
        let (name, size) = l.split_once('\t')?;
        (name == file).then(|| size.trim().parse().ok()).flatten()
    });
    Ok((file, pos, size))
}

/// `stat` of every archived binary log: `name<TAB>size`.
pub fn archive_stat_script(b: &Backups) -> Script {
    let mut s = Script::new();
    s.code("cd ").word(format!("{}/binlogs", b.dir)).code(
        " 2>/dev/null || exit 0\nfor f in *.[0-9][0-9][0-9][0-9][0-9][0-9]; do [ -e \"$f\" ] && stat -c '%n\t%s' \"$f\"; done; exit 0\n",
    );
    s
}

/// The primary's binary log file and position, with whichever client the server has.
pub fn primary_status_script() -> Script {
    let mut s = Script::new();
    s.code("if command -v mariadb >/dev/null; then c=mariadb; else c=mysql; fi\n$c --batch --skip-column-names -e 'SHOW MASTER STATUS'\n");
    s
}

/// What `foobar backup now` runs: the service's own command, if `apply` installed it.
pub fn backup_now_script() -> Script {
    let mut s = Script::new();
    s.code("if [ ! -x /usr/local/sbin/foobar-backup ]; then echo 'foobar-backup is not installed' >&2; exit 64; fi\n")
        .code(BACKUP_COMMAND)
        .code("\n");
    s
}

/// The verify checks on the backups themselves (the archive's check is made by the caller,
/// which can reach the primary).
pub fn backup_checks(b: &Backups, records: &[BackupRecord], now: i64) -> Vec<Check> {
    let newest = records
        .iter()
        .filter(|r| r.good)
        .max_by_key(|r| r.meta.as_ref().map(|m| m.finished));
    let Some(newest) = newest else {
        return vec![Check::fail(
            "backup_age",
            format!("no good backup in {}/backups", b.dir),
            "run `foobar backup now`, and check foobar-backup.timer on the backup host",
        )];
    };
    let m = newest.meta.as_ref().expect("good");
    let age = (now - m.finished).max(0) as u64;
    let allowed = b.max_age.as_secs();
    let mut checks = vec![if age <= allowed {
        Check::pass(
            "backup_age",
            format!(
                "newest good backup {} is {} old (allowed {})",
                newest.id,
                human_secs(age),
                human_secs(allowed)
            ),
        )
    } else {
        Check::fail(
            "backup_age",
            format!(
                "newest good backup {} is {} old; allowed {}",
                newest.id,
                human_secs(age),
                human_secs(allowed)
            ),
            "run `foobar backup now`; check foobar-backup.timer and the log in the backup's directory",
        )
    }];
    checks.push(match &newest.verified {
        Some(v) if v.ok => Check::pass("backup_restore_test", format!("{}: {}", newest.id, v.detail)),
        Some(v) => Check::fail(
            "backup_restore_test",
            format!("{}: {}", newest.id, v.detail),
            "read backup.log in the backup's directory; take a new backup with `foobar backup now`",
        ),
        None => Check::fail(
            "backup_restore_test",
            format!("{} has not passed a restore test", newest.id),
            "take a new backup with `foobar backup now` (each run tests its backup by restoring it)",
        ),
    });
    checks
}

pub fn human_secs(s: u64) -> String {
    humantime::format_duration(Duration::from_secs(s)).to_string()
}

pub fn human_size(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
        if v < 1024.0 || unit == "TiB" {
            return if unit == "B" {
                format!("{bytes} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "#backup 20261129T200000Z\n#meta\n{\"id\": \"20261129T200000Z\", \"host\": \"web-02\", \"tool\": \"mariadb-backup\", \"started\": 1795982400, \"finished\": 1795982405, \"seconds\": 5, \"size_bytes\": 1048576, \"gtid\": \"0-1-10\", \"binlog_file\": \"mysql-bin.000002\", \"binlog_position\": 900}\n#verified\n{\"ok\": true, \"tables\": 2, \"checked_at\": 1795982410, \"seconds\": 4, \"detail\": \"2 tables: equal\"}\n#backup 20261129T201000Z\n#backup 20261129T202000Z\n#meta\n{\"id\": \"20261129T202000Z\", \"host\": \"web-02\", \"tool\": \"mariadb-backup\", \"started\": 1795983600, \"finished\": 1795983606, \"seconds\": 6, \"size_bytes\": 2048, \"gtid\": \"0-1-20\", \"binlog_file\": \"mysql-bin.000002\", \"binlog_position\": 1900}\n";

    fn records() -> Vec<BackupRecord> {
        parse_listing(&HostName::new("web-02"), LISTING).unwrap()
    }

    #[test]
    fn listing_marks_only_complete_backups_good() {
        let r = records();
        assert_eq!(r.len(), 3);
        assert!(r[0].good && r[0].verified.as_ref().unwrap().ok);
        assert!(
            !r[1].good,
            "a directory without backup.json is a run that died"
        );
        assert!(r[2].good && r[2].verified.is_none());
        assert!(parse_listing(&HostName::new("h"), "#backup x\n#meta\n{not json\n").is_err());
        assert!(parse_listing(&HostName::new("h"), "").unwrap().is_empty());
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            RestoreTarget::parse("2026-11-29 20:00:05").unwrap(),
            RestoreTarget::Time(1795982405)
        );
        assert_eq!(
            RestoreTarget::parse("2026-11-29T20:00:05Z").unwrap(),
            RestoreTarget::Time(1795982405)
        );
        assert_eq!(
            RestoreTarget::parse("@1795982405").unwrap(),
            RestoreTarget::Time(1795982405)
        );
        assert_eq!(
            RestoreTarget::parse("0-1-15").unwrap(),
            RestoreTarget::Gtid {
                domain: 0,
                server: 1,
                seq: 15
            }
        );
        assert!(RestoreTarget::parse("yesterday").is_err());
        assert!(RestoreTarget::parse("0-1-x").is_err());
        // A time stops one second later, exclusive: the whole target second is replayed.
        assert_eq!(
            RestoreTarget::Time(1795982405).stop_args(),
            ["time".to_string(), "2026-11-29 20:00:06".to_string()]
        );
    }

    #[test]
    fn restore_starts_from_the_newest_backup_before_the_target() {
        let r = records();
        let at = |t: &str| choose(&r, &RestoreTarget::parse(t).unwrap()).map(|b| b.id.clone());
        assert_eq!(at("@1795983606").unwrap(), "20261129T202000Z");
        assert_eq!(at("@1795983605").unwrap(), "20261129T200000Z");
        assert_eq!(at("0-1-19").unwrap(), "20261129T200000Z");
        assert_eq!(at("0-1-20").unwrap(), "20261129T202000Z");
        let e = at("@1795982404").unwrap_err().to_string();
        assert!(e.contains("no good backup was finished before"), "{e}");
        assert!(
            e.contains("the oldest good backup, 20261129T200000Z"),
            "{e}"
        );
        assert!(at("0-1-9").is_err());
        assert!(at("1-1-100").is_err(), "another GTID domain");
    }

    #[test]
    fn restore_script_quotes_every_value() {
        let b = test_backups();
        let plan = RestorePlan {
            host: HostName::new("web-02"),
            backup: "20261129T200000Z".into(),
            backup_gtid: "0-1-10".into(),
            backup_finished: utc(1795982405),
            target: "x".into(),
            scratch: "/srv/scratch dir".into(),
        };
        let s = plan
            .script(&b, &RestoreTarget::Time(1795982405))
            .to_stdin()
            .unwrap();
        assert_eq!(
            s,
            "/usr/local/sbin/foobar-restore restore /var/backups/foobar-database/backups/20261129T200000Z '/srv/scratch dir' time '2026-11-29 20:00:06'\n"
        );
    }

    #[test]
    fn host_scripts_quote_the_directory() {
        let mut b = test_backups();
        b.dir = "/srv/it's".into();
        let l = listing_script(&b).to_stdin().unwrap();
        let q = crate::shell::quote("/srv/it's").unwrap();
        assert!(l.starts_with(&format!("DIR={q}\n")), "{l}");
        let s = archive_stat_script(&b).to_stdin().unwrap();
        let q = crate::shell::quote("/srv/it's/binlogs").unwrap();
        assert!(s.starts_with(&format!("cd {q} ")), "{s}");
        assert!(
            backup_now_script()
                .to_stdin()
                .unwrap()
                .contains(BACKUP_COMMAND)
        );
    }

    #[test]
    fn scratch_dirs_stay_away_from_live_data() {
        assert!(check_scratch_dir("/srv/restore").is_ok());
        assert!(check_scratch_dir("/var/lib/mysql").is_err());
        assert!(check_scratch_dir("/var/lib/mysql/x").is_err());
        assert!(check_scratch_dir("/").is_err());
        assert!(check_scratch_dir("relative").is_err());
        assert!(check_scratch_dir("/srv/$(x)").is_err());
        assert!(check_scratch_dir("/srv/../var/lib/mysql").is_err());
    }

    #[test]
    fn archive_lag_reads_status_and_stat() {
        let (f, p, s) = archive_lag(
            "mysql-bin.000002\t1900\t\t\n",
            "mysql-bin.000001\t500\nmysql-bin.000002\t1900\n",
        )
        .unwrap();
        assert_eq!((f.as_str(), p, s), ("mysql-bin.000002", 1900, Some(1900)));
        let (_, _, s) = archive_lag("mysql-bin.000003\t10\n", "mysql-bin.000002\t1900\n").unwrap();
        assert_eq!(s, None);
        assert!(archive_lag("", "").is_err());
    }

    fn test_backups() -> Backups {
        Backups {
            host: HostName::new("web-02"),
            dir: "/var/backups/foobar-database".into(),
            schedule: "daily".into(),
            max_age: Duration::from_secs(3600),
            retention_count: 2,
            retention_age: Duration::from_secs(86400),
            archive_user: "binlog_archive".into(),
            archive_host_pattern: "127.%".into(),
            archive_max_lag: Duration::from_secs(10),
            location: crate::error::Location::file_only("inv.yml"),
        }
    }

    #[test]
    fn checks_fail_when_the_newest_backup_is_old_or_untested() {
        let b = test_backups();
        let r = records();
        let c = backup_checks(&b, &r, 1795983606 + 60);
        assert!(c[0].ok, "{c:?}");
        assert!(!c[1].ok, "the newest has no restore test: {c:?}");
        let c = backup_checks(&b, &r, 1795983606 + 7200);
        assert!(!c[0].ok && c[0].detail.contains("2h"), "{c:?}");
        let c = backup_checks(&b, &r[..1], 1795982405);
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let c = backup_checks(&b, &[], 0);
        assert!(!c[0].ok && c[0].hint.as_ref().unwrap().contains("backup now"));
    }
}
