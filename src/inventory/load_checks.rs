//! What an inventory's logins and names must look like, checked at load: host and group
//! names, ssh ports and timeouts, and `accept-new` that would keep no key.

use std::path::Path;

use serde_saphyr::Spanned;

use super::rules;
use super::yaml::location_of;
use super::{InventoryError, SshDefaults};

/// A host's or group's name, as [`rules::check_host_name`] has it; else the error at its entry.
pub(super) fn check_name(
    location: &crate::error::Location,
    what: &str,
    name: &str,
) -> Result<(), InventoryError> {
    rules::check_host_name(name).map_err(|why| InventoryError::BadName {
        location: location.clone(),
        message: format!("{what} name `{}` {why}", name.escape_debug()),
        hint: format!(
            "a {what}'s name is a word such as `web-01` or `db_replica` (it names files and directories, e.g. under `render --out`); a host's address goes in `address:`"
        ),
    })
}

/// `value` when it keeps `rule`, else the error at its line.
pub(super) fn checked(
    path: &Path,
    what: &'static str,
    value: Spanned<String>,
    rule: fn(&str) -> Result<(), rules::RuleViolation>,
    hint: fn(&rules::RuleViolation) -> String,
) -> Result<String, InventoryError> {
    match rule(&value.value) {
        Ok(()) => Ok(value.value),
        Err(why) => Err(InventoryError::BadLogin {
            location: location_of(path, &value.referenced),
            message: format!("{what} `{}` {why}", value.value.escape_debug()),
            hint: hint(&why),
        }),
    }
}

/// A TCP port ssh can connect to: 1 to 65535 (the type refuses the rest).
pub(super) fn port(path: &Path, p: Spanned<u16>) -> Result<u16, InventoryError> {
    if p.value == 0 {
        return Err(InventoryError::Yaml {
            location: location_of(path, &p.referenced),
            message: "port 0 is no port ssh can connect to".into(),
            key_path: "port".into(),
            hint: Some(format!("{PORT_WORDS} (ssh's default is 22)")),
        });
    }
    Ok(p.value)
}

/// A number of seconds under `ssh:` within `range` (a timeout of 2^64 s overflowed the
/// arithmetic of deadlines and panicked), `default` when unset.
pub(super) fn seconds(
    path: &Path,
    what: &str,
    value: Option<Spanned<u64>>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, InventoryError> {
    let Some(v) = value else { return Ok(default) };
    if range.contains(&v.value) {
        return Ok(v.value);
    }
    Err(InventoryError::Yaml {
        location: location_of(path, &v.referenced),
        message: format!(
            "`{what}: {}` is out of range: {what} is {} to {} seconds",
            v.value,
            range.start(),
            range.end()
        ),
        key_path: format!("ssh.{what}"),
        hint: Some(format!(
            "write a number of seconds from {} to {} (the default is {default})",
            range.start(),
            range.end()
        )),
    })
}

/// What a port is, in the words of its errors.
pub(super) const PORT_WORDS: &str = "a TCP port is a whole number from 1 to 65535";

pub(super) fn address_hint(why: &rules::RuleViolation) -> String {
    use rules::RuleViolation::*;
    match why {
        Uri => "write the host alone in `address:` (e.g. `10.0.0.11`), the user in `user:` and the port in `port:`".into(),
        HoldsUser => "write the user in `user:` and the host alone in `address:`".into(),
        HoldsPort => "write the port in `port:` and the host alone in `address:` (an IPv6 address goes bare, without brackets)".into(),
        BadIpv4 => "write all four parts of an IPv4 address, e.g. `10.0.0.11`".into(),
        _ => "`address:` is a hostname (`db-01.example.com`) or an IP address (`10.0.0.11`, `2001:db8::11`); ssh options belong in the ssh_config file".into(),
    }
}

pub(super) fn user_hint(_: &rules::RuleViolation) -> String {
    "write the account ssh logs in as, e.g. `deploy`; ssh options belong in the ssh_config file"
        .into()
}

/// `accept-new` that records no key: `UserKnownHostsFile /dev/null` (in the ssh_config, as
/// `vagrant ssh-config` writes it, or as `known_hosts_file:`) makes every host new on every
/// connection, so every key is accepted. The warning, if so.
pub(super) fn keys_never_kept(ssh: &SshDefaults, at: &crate::error::Location) -> Option<String> {
    let dev_null = Path::new("/dev/null");
    let source = match (&ssh.known_hosts_file, &ssh.ssh_config) {
        // foobar passes its own on the command line: it wins over the ssh_config's.
        (Some(file), _) => {
            (file == dev_null).then(|| "`known_hosts_file: /dev/null`".to_string())?
        }
        (None, Some(config)) => {
            let line = null_known_hosts_line(&std::fs::read_to_string(config).ok()?)?;
            format!(
                "`UserKnownHostsFile /dev/null` ({}:{line})",
                config.display()
            )
        }
        (None, None) => return None,
    };
    Some(format!(
        "warning: {at}: `strict_host_key_checking: accept-new` with {source} keeps no host key: every host's key is trusted, every time, and a changed one (a man in the middle) is never noticed.\n\
hint: keep the keys: set `known_hosts_file: known_hosts` under `ssh:` (foobar passes it to ssh, over the ssh_config's), run once to record them, then set `strict_host_key_checking: true`"
    ))
}

/// The line (1-based) of the first `UserKnownHostsFile /dev/null` of an ssh_config text:
/// keywords are case-insensitive, `=` may separate the value, which may be quoted.
pub(super) fn null_known_hosts_line(config: &str) -> Option<usize> {
    config
        .lines()
        .position(|l| {
            let l = l.trim();
            let (key, value) = match l.find(|c: char| c.is_whitespace() || c == '=') {
                Some(i) => (
                    &l[..i],
                    l[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
                ),
                None => return false,
            };
            let first = value
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('"');
            key.eq_ignore_ascii_case("UserKnownHostsFile") && first == "/dev/null"
        })
        .map(|i| i + 1)
}
