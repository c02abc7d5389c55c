//! What a value must look like before it may reach a host: paths, service and package names,
//! owners. Checked when the playbook is loaded (values without `{{`) and again on what a
//! template renders, so a bad value stops at the file and line that wrote it, not on a host.
//! Scripts quote every value anyway ([`crate::shell`]); these rules keep the values meaningful
//! (`/etc/../tmp/x` is not what anyone meant) and out of option and framing syntax.

/// Why a value breaks its rule; shown after the value (`path `etc/x` is not absolute`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    #[error("holds a control character ({0})")]
    ControlCharacter(String),
    #[error("is not absolute")]
    NotAbsolute,
    #[error("is not normalized (empty component or trailing /)")]
    EmptyComponent,
    #[error("is not normalized (`{0}` component)")]
    DotComponent(String),
    #[error("is not a systemd unit name (letters, digits and `:-_.\\@`, not starting with `-`)")]
    NotAUnit,
    #[error(
        "is not a Debian package name (lowercase letters, digits and `+-.`, optionally `:arch`)"
    )]
    NotAPackage,
    #[error("is not a user or group name (lowercase letters, digits and `_-.`, or a number)")]
    NotAnAccount,
    #[error("is empty")]
    Empty,
    #[error("is the root directory, which no file can replace")]
    Root,
    #[error("is a URI; ssh would read its parts its own way")]
    Uri,
    #[error("holds a user (`@`)")]
    HoldsUser,
    #[error("starts with `-` (ssh would read it as an option)")]
    LeadingDash,
    #[error("looks like an IPv4 address but is not one")]
    BadIpv4,
    #[error("holds a port (`:`)")]
    HoldsPort,
    #[error(
        "is not a hostname or an IP address (letters, digits, `-`, `_` and `.`; or an IPv4 or IPv6 literal)"
    )]
    NotADestination,
    #[error(
        "is not a host or group name (letters, digits, `-`, `_` and `.`, not starting with `-` or `.`, at most 253)"
    )]
    NotAName,
    #[error(
        "is not a plain user name (letters, digits and `._-`, not starting with `-`, at most 64)"
    )]
    NotAUser,
}

/// The first control character (newline, CR, NUL, ...) in `s`, shown escaped.
fn control(s: &str) -> Option<String> {
    s.chars()
        .find(|c| c.is_control())
        .map(|c| c.escape_default().to_string())
}

/// A host's or group's name: it names a directory under `render --out`, a `host_vars/` file,
/// a `--limit` pattern and a line of every report, so it is a hostname-like word: ASCII
/// letters, digits, `-`, `_` and `.`, 1 to 253 characters, not starting with `-` (an
/// option) or `.` (`.`, `..`, a hidden file).
pub fn check_host_name(name: &str) -> Result<(), RuleViolation> {
    if let Some(c) = control(name) {
        return Err(RuleViolation::ControlCharacter(c));
    }
    if name.is_empty() {
        return Err(RuleViolation::Empty);
    }
    if name.starts_with('-') {
        return Err(RuleViolation::LeadingDash);
    }
    let ok = name.len() <= 253
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RuleViolation::NotAName)
    }
}

/// An absolute, normalized path: starts with `/`, no `.` or `..` component, no empty component
/// (`//`), no trailing `/` (but for `/` itself), no control character.
pub fn check_path(p: &str) -> Result<(), RuleViolation> {
    if let Some(c) = control(p) {
        return Err(RuleViolation::ControlCharacter(c));
    }
    if !p.starts_with('/') {
        return Err(RuleViolation::NotAbsolute);
    }
    if p == "/" {
        return Ok(());
    }
    for part in p[1..].split('/') {
        match part {
            "" => return Err(RuleViolation::EmptyComponent),
            "." | ".." => return Err(RuleViolation::DotComponent(part.into())),
            _ => {}
        }
    }
    Ok(())
}

/// A systemd unit name as `systemctl` takes it: ASCII letters, digits and `:-_.\@`, at most
/// 255 characters, not starting with `-`.
pub fn check_service(name: &str) -> Result<(), RuleViolation> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RuleViolation::NotAUnit)
    }
}

/// A Debian package name as apt takes it: lowercase letters, digits and `+-.`, starting with a
/// letter or digit, at least two characters; optionally `:arch`.
pub fn check_package(name: &str) -> Result<(), RuleViolation> {
    let (pkg, arch) = match name.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (name, None),
    };
    let pkg_ok = pkg.len() >= 2
        && pkg.as_bytes()[0].is_ascii_alphanumeric()
        && pkg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if pkg_ok && arch_ok {
        Ok(())
    } else {
        Err(RuleViolation::NotAPackage)
    }
}

/// A user or group as `chown` takes it: a name as `useradd` accepts it, or a number.
pub fn check_account(name: &str) -> Result<(), RuleViolation> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && (name.bytes().all(|b| b.is_ascii_digit())
            || (name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                && name
                    .trim_end_matches('$')
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))));
    if ok {
        Ok(())
    } else {
        Err(RuleViolation::NotAnAccount)
    }
}

/// What ssh connects to: a hostname (or an ssh_config alias of the same shape: labels of
/// letters, digits, `-` and `_`, dot-separated, none starting with `-`, at most 253
/// characters, an optional final dot), an IPv4 literal, or an IPv6 literal (bare, with an
/// optional `%zone`). Never a URI, `user@host` or `host:port`: ssh and the ssh library each
/// read those their own way (`ssh://-oProxyCommand=...` reaches ssh as an option).
pub fn check_destination(d: &str) -> Result<(), RuleViolation> {
    if let Some(c) = control(d) {
        return Err(RuleViolation::ControlCharacter(c));
    }
    if d.is_empty() {
        return Err(RuleViolation::Empty);
    }
    if d.contains("://") {
        return Err(RuleViolation::Uri);
    }
    if d.starts_with('-') {
        return Err(RuleViolation::LeadingDash);
    }
    if d.contains('@') {
        return Err(RuleViolation::HoldsUser);
    }
    if d.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if d.contains(':') {
        let (addr, zone) = match d.split_once('%') {
            Some((a, z)) => (a, Some(z)),
            None => (d, None),
        };
        let zone_ok = zone.is_none_or(|z| {
            !z.is_empty()
                && z.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
        if addr.parse::<std::net::Ipv6Addr>().is_ok() && zone_ok {
            return Ok(());
        }
        return Err(if d.matches(':').count() == 1 {
            RuleViolation::HoldsPort
        } else {
            RuleViolation::NotADestination
        });
    }
    let name = d.strip_suffix('.').unwrap_or(d);
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // `127.0.1` or `10.1`: inet_aton would read it as some address; say which was meant.
        return Err(RuleViolation::BadIpv4);
    }
    let labels_ok = name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if labels_ok {
        Ok(())
    } else {
        Err(RuleViolation::NotADestination)
    }
}

/// The user ssh logs in as: a plain user name (ASCII letters, digits and `._-`, not starting
/// with `-`, optionally ending in `$`, at most 64 characters). Nothing ssh or a shell would
/// read as syntax: no `@`, `:`, `%`, blank or quote.
pub fn check_ssh_user(user: &str) -> Result<(), RuleViolation> {
    if let Some(c) = control(user) {
        return Err(RuleViolation::ControlCharacter(c));
    }
    let body = user.strip_suffix('$').unwrap_or(user);
    let ok = !body.is_empty()
        && user.len() <= 64
        && !body.starts_with('-')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RuleViolation::NotAUser)
    }
}

/// A handler's name (it is recorded, line by line, on the host): no control character.
pub fn check_name(name: &str) -> Result<(), RuleViolation> {
    match control(name) {
        Some(c) => Err(RuleViolation::ControlCharacter(c)),
        None if name.is_empty() => Err(RuleViolation::Empty),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_group_names_are_plain_words() {
        for good in ["web-01", "db_replica", "lb-01.example.com", "a", "Web01"] {
            assert!(check_host_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "/root",
            "../../x",
            "a/b",
            "-x",
            ".hidden",
            "web\n01",
            "web\u{1b}[31m",
            "a b",
            "caf\u{e9}",
            "x:y",
        ] {
            assert!(check_host_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_host_name(&"a".repeat(254)).is_err());
    }

    #[test]
    fn paths_must_be_absolute_and_normalized() {
        for good in ["/", "/etc/x.conf", "/opt/app/a b/it's $(x)"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in [
            "etc/x",
            "/../../tmp/x",
            "/etc/./x",
            "/etc//x",
            "/etc/",
            "/etc/a\nb",
            "/etc/a\0b",
            "/etc/a\rb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_follow_systemd_and_apt() {
        assert!(check_service("nginx").is_ok());
        assert!(check_service("getty@tty1.service").is_ok());
        for bad in ["nginx; id > ~/PWNED", "-x", "", "a b", "a\nb"] {
            assert!(check_service(bad).is_err(), "{bad:?}");
        }
        assert!(check_package("python3-pymysql").is_ok());
        assert!(check_package("libc6:amd64").is_ok());
        for bad in ["-y", "a b", "nginx;id", "X", "$(id)"] {
            assert!(check_package(bad).is_err(), "{bad:?}");
        }
        assert!(check_account("www-data").is_ok());
        assert!(check_account("0").is_ok());
        for bad in ["-R", "a:b", "root root", ""] {
            assert!(check_account(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn destinations_are_hostnames_or_ip_literals() {
        for good in [
            "web-01",
            "db.example.com",
            "db.example.com.",
            "lb_x",
            "127.0.1.2",
            "::1",
            "2001:db8::10",
            "fe80::1%eth0",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(check_destination(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("ssh://-oProxyCommand=id", RuleViolation::Uri),
            ("ssh://root@10.0.0.1:22", RuleViolation::Uri),
            ("-oProxyCommand=id", RuleViolation::LeadingDash),
            ("root@10.0.0.1", RuleViolation::HoldsUser),
            ("10.0.0.1:2222", RuleViolation::HoldsPort),
            ("127.0.1", RuleViolation::BadIpv4),
            ("300.1.1.1", RuleViolation::BadIpv4),
            ("[::1]", RuleViolation::NotADestination),
            ("a b", RuleViolation::NotADestination),
            ("host;id", RuleViolation::NotADestination),
            ("a..b", RuleViolation::NotADestination),
            ("a.-b", RuleViolation::NotADestination),
            ("%h", RuleViolation::NotADestination),
            ("", RuleViolation::Empty),
        ] {
            assert_eq!(check_destination(bad), Err(why), "{bad:?}");
        }
        assert!(matches!(
            check_destination("a\nb"),
            Err(RuleViolation::ControlCharacter(_))
        ));
    }

    #[test]
    fn ssh_users_are_plain_names() {
        for good in ["root", "deploy", "ec2-user", "Admin.1", "svc_x", "host$"] {
            assert_eq!(check_ssh_user(good), Ok(()), "{good}");
        }
        for bad in [
            "-oProxyCommand=id",
            "a b",
            "a@b",
            "a:b",
            "%u",
            "$(id)",
            "",
            "x'y",
        ] {
            assert_eq!(check_ssh_user(bad), Err(RuleViolation::NotAUser), "{bad:?}");
        }
    }
}
