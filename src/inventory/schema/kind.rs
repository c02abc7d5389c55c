//! What a stack variable's value must be, and why a value is not that.

use serde_json::Value;

use crate::error::did_you_mean;

/// What a path of the stack may not hold, besides whitespace and control characters.
const PATH_SYNTAX: &str = "\"'\\$%#;`";

/// What a variable's value must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    String,
    Bool,
    Int,
    Port,
    Duration,
    Address,
    Path,
    Enum(Vec<String>),
    List,
    Map,
}

impl Kind {
    pub(super) fn parse(text: &str, values: Vec<String>) -> Option<Kind> {
        Some(match text {
            "string" => Kind::String,
            "bool" => Kind::Bool,
            "int" => Kind::Int,
            "port" => Kind::Port,
            "duration" => Kind::Duration,
            "address" => Kind::Address,
            "path" => Kind::Path,
            "enum" if !values.is_empty() => Kind::Enum(values),
            "list" => Kind::List,
            "map" => Kind::Map,
            _ => return None,
        })
    }

    /// The type in a user's words, for docs and errors.
    pub fn describe(&self) -> String {
        match self {
            Kind::String => "a string".into(),
            Kind::Bool => "true or false".into(),
            Kind::Int => "a whole number".into(),
            Kind::Port => "a port (1-65535)".into(),
            Kind::Duration => "a duration such as `2s`, `100ms` or `1m`".into(),
            Kind::Address => "an IP address or host name".into(),
            Kind::Path => "an absolute path".into(),
            Kind::Enum(values) => format!(
                "one of {}",
                values
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Kind::List => "a list".into(),
            Kind::Map => "a mapping".into(),
        }
    }

    /// Why `v` is not of this kind, if it is not.
    pub(super) fn check(&self, v: &Value) -> Option<String> {
        if let (Kind::Path, Value::String(s)) = (self, v)
            && let Some(c) = s
                .chars()
                .find(|c| c.is_whitespace() || PATH_SYNTAX.contains(*c))
        {
            return Some(format!(
                "`{s}` holds `{}`: a path of the stack is written unquoted into systemd units (`WorkingDirectory=`, `ExecStart=`) and scripts, where spaces and `{PATH_SYNTAX}` are syntax",
                c.escape_default()
            ));
        }
        let ok = match (self, v) {
            (Kind::String, Value::String(_)) => true,
            // A number where a string is expected (`app_version: 2`) is what the user meant.
            (Kind::String, Value::Number(_)) => true,
            (Kind::Bool, Value::Bool(_)) => true,
            (Kind::Bool, Value::String(s)) => {
                return Some(format!(
                    "`{s}` is a string, where true or false is expected (YAML 1.2 reads only `true` and `false` as booleans)"
                ));
            }
            (Kind::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Kind::Port, Value::Number(n)) => n.as_u64().is_some_and(|p| (1..=65535).contains(&p)),
            (Kind::Duration, Value::String(s)) => is_duration(s),
            (Kind::Address, Value::String(s)) => is_address(s),
            (Kind::Path, Value::String(s)) => crate::inventory::rules::check_path(s).is_ok(),
            (Kind::Enum(values), Value::String(s)) => values.contains(s),
            (Kind::List, Value::Array(_)) => true,
            (Kind::Map, Value::Object(_)) => true,
            _ => false,
        };
        (!ok).then(|| match (self, v) {
            (Kind::Enum(values), Value::String(s)) => {
                match did_you_mean(&s.to_ascii_lowercase(), values.iter().map(String::as_str)) {
                    Some(c) => format!("`{s}` is not {}; did you mean `{c}`?", self.describe()),
                    None => format!("`{s}` is not {}", self.describe()),
                }
            }
            _ => format!("{} is not {}", shown(v), self.describe()),
        })
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        Value::Null => "an empty value".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        other => format!("`{other}`"),
    }
}

/// `2s`, `100ms`, `1m`, `1h`, `0s`: what HAProxy, Prometheus and the stack's templates take.
fn is_duration(s: &str) -> bool {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(&s[digits..], "ms" | "s" | "m" | "h" | "d")
}

/// An IP literal, or a host name of letters, digits, `-` and `.` (RFC 1123).
fn is_address(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
        || (!s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}
