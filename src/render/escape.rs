//! A value as data in each file syntax the stack writes, the way [`crate::shell`] does it for
//! shell: one template filter per target syntax, each taking a value and writing it so that
//! the file's real reader gets back exactly that value, or refusing it when the syntax cannot
//! carry it. NUL is refused by every filter; a refusal never quotes the value (it may be a
//! secret): it says what the syntax cannot carry, and the render error adds the template's
//! file:line and the secret or variable involved.
//!
//! | filter | writes | for (its reader) |
//! |---|---|---|
//! | `env` | `"…"`, `\` before `\ " $` and backtick | systemd `EnvironmentFile=` (`load_env_file`); also `sh`'s `.` |
//! | `systemd` | `"…"`, `\` before `\ "`, `%%` | one word of a unit file (`Environment="K=V"`) |
//! | `mycnf` | `"…"`, `\` before `\ " '`, `\n` `\t` `\r` | MySQL/MariaDB option files (`my_print_defaults`, the clients) |
//! | `goini` | `"""…"""` | mysqld_exporter's `--config.my-cnf` (Go's gopkg.in/ini.v1) |
//! | `haproxy` | `'…'`, a `'` as `'\''` | HAProxy's configuration (strong quoting) |
//! | `nginx` | `"…"`, `\` before `\ "` | Nginx's configuration |
//! | `yaml`, `json` | a JSON scalar | YAML (Prometheus) and JSON files |
//! | `keepalived` | the word itself, checked | keepalived's configuration (no quoting) |
//! | `cidr` | an address or network, checked | nftables address sets |
//! | `sql` | `'…'`, `\` doubled, `'` doubled | SQL string literals (default `sql_mode`) |
//!
//! Newline and CR are refused by `env`, `systemd`, `goini`, `haproxy` and `nginx` (each ends a
//! line, an assignment or a directive there); `mycnf`, `yaml`, `json` and `sql` write them as
//! escapes. `nginx` also refuses `$`: Nginx expands variables in many directives and has no
//! escape for it.

use minijinja::{Error, ErrorKind, Value};

/// Every refusal's message starts with this, so that a render that failed on a secret's value
/// can report the refusal (which never quotes the value) rather than hiding the message.
pub(super) const REFUSAL: &str = "a value that cannot be written here: ";

fn refuse(why: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("{REFUSAL}{why}"))
}

/// The text of a scalar: strings as they are, numbers and booleans as written.
fn text(value: &Value) -> Result<String, Error> {
    if let Some(s) = value.as_str() {
        return Ok(s.to_string());
    }
    if value.is_undefined() || value.is_none() {
        return Err(refuse(
            "an empty value (none); set it, or use `default`".into(),
        ));
    }
    match value.kind() {
        minijinja::value::ValueKind::Number | minijinja::value::ValueKind::Bool => {
            Ok(value.to_string())
        }
        kind => Err(refuse(format!(
            "a {kind}, where one value (a string or a number) is expected"
        ))),
    }
}

/// The first character of `s` that `syntax` cannot carry (one of `forbidden`), named.
fn check(s: &str, forbidden: &[char], syntax: &str) -> Result<(), Error> {
    if let Some(c) = s.chars().find(|c| *c == '\0' || forbidden.contains(c)) {
        let name = match c {
            '\0' => "a NUL byte".to_string(),
            '\n' => "a newline".to_string(),
            '\r' => "a carriage return".to_string(),
            c => format!("`{c}`"),
        };
        return Err(refuse(format!("{name} cannot be written in {syntax}")));
    }
    Ok(())
}

const LINE: &[char] = &['\n', '\r'];

/// systemd's `EnvironmentFile=` (and Debian's `/etc/default` files, which the old init
/// scripts source with `sh`): a double-quoted value, where systemd's `load_env_file` and the
/// shell both unescape `\\`, `\"`, `\$` and `` \` `` and keep everything else (spaces, `#`,
/// `'`, `;`) as it is.
pub fn env(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    check(
        &s,
        LINE,
        "an EnvironmentFile value (systemd ends the assignment there)",
    )?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// One word of a systemd unit file, as `Environment=` reads its assignments: specifiers
/// (`%`) doubled, then a double-quoted word with C escapes for `\` and `"`. (`Environment=`
/// expands no `$`.)
pub fn systemd(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    check(&s, LINE, "a systemd unit file")?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// A MySQL/MariaDB option file value (`[client]` of the binlog archive), as mysys'
/// `my_load_defaults` reads it: double quotes (which also keep `#` from starting a comment and
/// spaces at either end), and inside them `\\`, `\"`, `\'`, `\n`, `\t`, `\r`.
pub fn mycnf(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    check(&s, &[], "a MySQL option file")?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// mysqld_exporter's `--config.my-cnf`, which it reads with Go's gopkg.in/ini.v1, not with
/// MySQL's parser: a `"""`-quoted value is taken raw, up to the line's last `"""` (no escapes,
/// no comments, spaces kept). Any one-line value fits.
pub fn goini(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    check(
        &s,
        LINE,
        "the exporter's option file (gopkg.in/ini would read on into the next line)",
    )?;
    Ok(format!("\"\"\"{s}\"\"\""))
}

/// One word of HAProxy's configuration: single (strong) quotes, inside which nothing is
/// special (no `\`, no `$VAR`, no `#`); a `'` closes them, is written escaped, and they open
/// again (`'it'\''s'`), as in the shell.
pub fn haproxy(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    check(&s, LINE, "HAProxy's configuration (one line per statement)")?;
    Ok(format!("'{}'", s.replace('\'', "'\\''")))
}

/// One word of Nginx's configuration: double quotes, inside which `\\` and `\"` are unescaped
/// and `;`, `{`, `}`, `#` and spaces are plain. `$` is refused: Nginx expands `$name` in many
/// directives and has no escape for it.
pub fn nginx(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    check(
        &s,
        &['\n', '\r', '$'],
        "Nginx's configuration (it expands `$name` and has no escape for `$`)",
    )?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// A JSON scalar, which is also a YAML 1.2 (and YAML 1.1, as Go's yaml reads it)
/// double-quoted scalar: the same for `yaml` and `json`. Numbers and booleans stay what they
/// are; strings are quoted with JSON's escapes.
pub fn json(value: &Value) -> Result<String, Error> {
    if let Some(s) = value.as_str() {
        check(s, &[], "a YAML or JSON file")?;
        return serde_json::to_string(s).map_err(|e| refuse(e.to_string()));
    }
    let s = text(value)?;
    check(&s, &[], "a YAML or JSON file")?;
    Ok(s)
}

/// One word of keepalived's configuration, which has no escapes: a word ends at whitespace,
/// `#` and `!` start comments and `"`, `{`, `}` are syntax, so a value holding any of them (or
/// `'` and `\`, which some versions treat specially) is refused.
pub fn keepalived(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    if s.is_empty() {
        return Err(refuse(
            "an empty word cannot be written in keepalived's configuration".into(),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || "#!\"'{}\\".contains(*c))
    {
        let name = match c {
            '\n' => "a newline".to_string(),
            '\r' => "a carriage return".to_string(),
            c if c.is_whitespace() => "whitespace".to_string(),
            c => format!("`{c}`"),
        };
        return Err(refuse(format!(
            "{name} cannot be written in keepalived's configuration (it has no quoting)"
        )));
    }
    check(&s, &[], "keepalived's configuration")?;
    Ok(s)
}

/// A network for nftables' `ip saddr { … }` (and any other address list): an IP address or
/// `ADDRESS/PREFIX`, checked, written in its canonical form; anything else is refused, since
/// nftables would read `}`, `;` or a keyword as more of the ruleset.
pub fn cidr(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    let (address, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s.as_str(), None),
    };
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| refuse("a network must be an IP address or ADDRESS/PREFIX (CIDR)".into()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => Ok(ip.to_string()),
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => Ok(format!("{ip}/{n}")),
            _ => Err(refuse(format!(
                "a network (CIDR) must end in a prefix from /0 to /{max}"
            ))),
        },
    }
}

/// A single-quoted SQL string literal, as `src/mysql/sql.rs` writes them.
pub fn sql(value: &Value) -> Result<String, Error> {
    let s = text(value)?;
    crate::mysql::quote_string(&s)
        .map_err(|_| refuse("a NUL byte cannot be written in an SQL string".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        Value::from(s)
    }

    #[test]
    fn each_filter_quotes_for_its_syntax() {
        assert_eq!(env(&v(r#"a"b\c$d`e f"#)).unwrap(), r#""a\"b\\c\$d\`e f""#);
        assert_eq!(systemd(&v(r#"K=a"b\c%d"#)).unwrap(), r#""K=a\"b\\c%%d""#);
        assert_eq!(mycnf(&v("a\"b'c\\d#e\nf")).unwrap(), r#""a\"b\'c\\d#e\nf""#);
        assert_eq!(goini(&v(r#"x"""y#z;w"#)).unwrap(), r#""""x"""y#z;w""""#);
        assert_eq!(haproxy(&v("it's #1")).unwrap(), r"'it'\''s #1'");
        assert_eq!(nginx(&v(r#"a"b\c;{}"#)).unwrap(), r#""a\"b\\c;{}""#);
        assert_eq!(json(&v("a\"b\nc")).unwrap(), r#""a\"b\nc""#);
        assert_eq!(json(&Value::from(9100)).unwrap(), "9100");
        assert_eq!(sql(&v(r"a'b\c")).unwrap(), r"'a''b\\c'");
        assert_eq!(env(&Value::from(8000)).unwrap(), "\"8000\"");
        assert_eq!(keepalived(&v("Pa55-w0rd.x")).unwrap(), "Pa55-w0rd.x");
        for bad in ["a b", "a#b", "a!b", "a\"b", "a}b", ""] {
            assert!(keepalived(&v(bad)).is_err(), "{bad}");
        }
        assert_eq!(cidr(&v("10.0.0.0/8")).unwrap(), "10.0.0.0/8");
        assert_eq!(cidr(&v("::1")).unwrap(), "::1");
        for bad in [
            "10.0.0.0/8 } accept; #",
            "10.0.0.0/33",
            "any",
            "10.0.0.0/+8",
        ] {
            assert!(cidr(&v(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_a_syntax_cannot_carry_is_refused_without_the_value() {
        for (f, value) in [
            (env as fn(&Value) -> Result<String, Error>, "pw\nUSER=root"),
            (keepalived, "pw\nx"),
            (systemd, "a\rb"),
            (goini, "a\nb"),
            (haproxy, "a\nb"),
            (nginx, "a\nb"),
            (nginx, "a$b"),
            (mycnf, "a\0b"),
            (json, "a\0b"),
            (sql, "a\0b"),
        ] {
            let e = f(&v(value)).unwrap_err().to_string();
            assert!(e.contains(REFUSAL), "{e}");
            assert!(!e.contains(value), "{e} quotes the value");
        }
        assert!(
            env(&v("a\nb"))
                .unwrap_err()
                .to_string()
                .contains("a newline cannot be written in an EnvironmentFile value")
        );
    }
}
