//! The line protocol of apply scripts: the shell functions that print it ([`PROTOCOL`]) and
//! its parser ([`parse_reply`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Shell functions every apply script starts with: the line protocol. Every field a script
/// prints is a step number foobar chose, a fixed keyword, or base64: no path or name from the
/// plan ever reaches the output, so no value can forge or break a line.
pub const PROTOCOL: &str = r#"ok() { printf 'OK\t%s\n' "$1"; }
skip() { printf 'SKIP\t%s\n' "$1"; }
err() { printf 'ERR\t%s\t%s\t' "$1" "$2"; printf '%s' "$3" | base64 -w0; echo; }
rolled_back() { printf 'ROLLBACK\t%s\t' "$1"; printf '%s' "$2" | base64 -w0; printf '\t'; printf '%s' "$3" | base64 -w0; echo; }
"#;

/// One line of an apply script's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Step `n` is done.
    Ok(usize),
    /// Step `n` was not needed.
    Skip(usize),
    /// Step `n` failed at `stage` with this output; the script stopped.
    Err {
        step: usize,
        stage: String,
        output: String,
    },
    /// Handler step `n` failed (`first`); the files were restored and the handler ran again
    /// (`second`).
    Rollback {
        step: usize,
        first: String,
        second: String,
    },
    /// The script's lock step found the host locked by this holder; nothing was changed.
    Locked(String),
    /// The script's compare-and-swap found the host's facts changed since the plan; nothing
    /// was changed and the lock was released.
    Stale,
    /// A host script's output for play `n` follows (see `apply::script::host_script`).
    Play(usize),
    /// A host script stopped between plays because the run was interrupted, and released
    /// the lock.
    Stopped,
    /// A host script ran all its plays and released the lock.
    Unlocked,
    /// The script reached its end.
    Done,
}

fn decode(field: Option<&str>) -> String {
    let bytes = STANDARD
        .decode(field.unwrap_or("").trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Parse one output line; `None` for anything that is not protocol (a command's stray output).
pub fn parse_reply(line: &str) -> Option<Reply> {
    let mut f = line.split('\t');
    let kind = f.next()?;
    let step = |s: Option<&str>| s.and_then(|s| s.parse::<usize>().ok());
    match kind {
        "OK" => Some(Reply::Ok(step(f.next())?)),
        "SKIP" => Some(Reply::Skip(step(f.next())?)),
        "ERR" => {
            let n = step(f.next())?;
            let stage = f.next()?.to_string();
            Some(Reply::Err {
                step: n,
                stage,
                output: decode(f.next()),
            })
        }
        "ROLLBACK" => {
            let n = step(f.next())?;
            Some(Reply::Rollback {
                step: n,
                first: decode(f.next()),
                second: decode(f.next()),
            })
        }
        "LOCKED" => Some(Reply::Locked(
            decode(f.next())
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(", "),
        )),
        "STALE" if f.next().is_none() => Some(Reply::Stale),
        "PLAY" => Some(Reply::Play(step(f.next())?)),
        "STOPPED" if f.next().is_none() => Some(Reply::Stopped),
        "UNLOCKED" if f.next().is_none() => Some(Reply::Unlocked),
        "DONE" if f.next().is_none() => Some(Reply::Done),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines_round_trip() {
        let script = format!(
            "{PROTOCOL}ok 3\nskip 4\nerr 5 stage \"$(printf 'bad\\tthing\\nhere')\"\nrolled_back 6 one two\necho DONE\n"
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let replies: Vec<Reply> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(parse_reply)
            .collect();
        assert_eq!(
            replies,
            vec![
                Reply::Ok(3),
                Reply::Skip(4),
                Reply::Err {
                    step: 5,
                    stage: "stage".into(),
                    output: "bad\tthing\nhere".into()
                },
                Reply::Rollback {
                    step: 6,
                    first: "one".into(),
                    second: "two".into()
                },
                Reply::Done,
            ]
        );
        assert_eq!(parse_reply("OK\t/etc/x"), None);
        assert_eq!(
            parse_reply("LOCKED\tYWxpY2UgcGlkIDQyCg=="),
            Some(Reply::Locked("alice pid 42".into()))
        );
        assert_eq!(parse_reply("STALE"), Some(Reply::Stale));
        assert_eq!(parse_reply("PLAY\t3"), Some(Reply::Play(3)));
        assert_eq!(parse_reply("STOPPED"), Some(Reply::Stopped));
    }
}
