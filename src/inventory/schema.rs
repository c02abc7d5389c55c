//! The stack's contract: every variable its playbooks and templates read, with a type, a
//! default or "required", and one line of doc, from `variables.yml` beside the playbook (as an
//! Ansible role's `defaults/main.yml` with its `argument_specs`, or a Helm chart's values
//! schema). Defaults are the lowest layer of [`super::Inventory::host_vars`]; every value an
//! inventory sets for a variable of the schema is checked against its type at load, with the
//! file and line of the value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::yaml::{location_of, parse};
use super::{HostName, Inventory, InventoryError, Vars};
use crate::error::{Location, did_you_mean};

/// The schema's file name, beside the playbook.
pub const FILE_NAME: &str = "variables.yml";

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
    fn parse(text: &str, values: Vec<String>) -> Option<Kind> {
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
    fn check(&self, v: &Value) -> Option<String> {
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
            (Kind::Path, Value::String(s)) => super::rules::check_path(s).is_ok(),
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

/// What a path of the stack may not hold, besides whitespace and control characters.
const PATH_SYNTAX: &str = "\"'\\$%#;`";

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

/// One variable of the contract.
#[derive(Debug, Clone)]
pub struct VarSpec {
    pub kind: Kind,
    pub default: Option<Value>,
    /// Defaults picked by another variable's value: `flavor` -> `mysql` -> `mysql-server`.
    pub default_by: BTreeMap<String, BTreeMap<String, Value>>,
    /// Required when this group has hosts.
    pub required_with: Option<String>,
    pub doc: String,
    pub since: String,
    pub location: Location,
    /// May hold a newline (every string value of the stack is one line unless it says so:
    /// configuration files of one setting per line cannot carry more).
    pub multiline: bool,
}

impl VarSpec {
    /// Why `v` is not a value of this variable: a character it may not hold, or its type.
    fn check(&self, v: &Value) -> Option<String> {
        characters(v, self.multiline).or_else(|| self.kind.check(v))
    }
}

/// A character no file syntax of the stack can carry in `v` (or in any string inside it):
/// NUL always, newline and carriage return unless `multiline`. The value is not quoted.
pub(super) fn characters(v: &Value, multiline: bool) -> Option<String> {
    match v {
        Value::String(s) => {
            let bad = s
                .chars()
                .find(|c| *c == '\0' || (!multiline && matches!(c, '\n' | '\r')))?;
            Some(match bad {
                '\0' => "holds a NUL byte, which no file foobar writes can carry".into(),
                '\n' => "holds a newline: it is written into files of one setting per line (EnvironmentFile, HAProxy, Nginx, option files), where a newline would start another setting".into(),
                _ => "holds a carriage return: it is written into files of one setting per line, where it ends the line".into(),
            })
        }
        Value::Array(items) => items.iter().find_map(|i| characters(i, multiline)),
        Value::Object(map) => map.values().find_map(|i| characters(i, multiline)),
        _ => None,
    }
}

/// The stack's variables, from `variables.yml`.
#[derive(Debug, Clone)]
pub struct Schema {
    pub path: PathBuf,
    pub variables: BTreeMap<String, VarSpec>,
    /// Groups the plays target that an inventory may leave out (that part is off).
    pub optional_groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    format: Spanned<u32>,
    #[serde(default)]
    optional_groups: Vec<String>,
    variables: BTreeMap<String, Spanned<RawVar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVar {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    values: Vec<String>,
    default: Option<Value>,
    #[serde(default)]
    default_by: BTreeMap<String, BTreeMap<String, Value>>,
    required_with: Option<String>,
    doc: String,
    since: String,
    #[serde(default)]
    multiline: bool,
}

fn schema_error(location: Location, message: String) -> InventoryError {
    InventoryError::Playbook {
        location,
        message,
        hint: Some(format!(
            "see the comment at the top of {FILE_NAME} for what each field takes"
        )),
    }
}

impl Schema {
    /// The schema beside `playbook`, if there is one.
    pub fn beside(playbook: &Path) -> Result<Option<Schema>, InventoryError> {
        let path = playbook
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(FILE_NAME);
        if !path.is_file() {
            return Ok(None);
        }
        Schema::load(&path).map(Some)
    }

    pub fn load(path: &Path) -> Result<Schema, InventoryError> {
        let text = super::load::read(path)?;
        let raw: RawSchema = parse(path, &text)?;
        if raw.format.value != 1 {
            return Err(schema_error(
                location_of(path, &raw.format.referenced),
                format!(
                    "{} has format {}; this foobar reads format 1",
                    path.display(),
                    raw.format.value
                ),
            ));
        }
        let mut variables = BTreeMap::new();
        for (name, spec) in raw.variables {
            let location = location_of(path, &spec.referenced);
            let r = spec.value;
            let kind = Kind::parse(&r.kind.value, r.values).ok_or_else(|| {
                schema_error(
                    location_of(path, &r.kind.referenced),
                    format!("variable `{name}` has an unknown type `{}`", r.kind.value),
                )
            })?;
            let spec = VarSpec {
                kind,
                default: r.default,
                default_by: r.default_by,
                required_with: r.required_with,
                doc: r.doc,
                since: r.since,
                location,
                multiline: r.multiline,
            };
            for d in spec
                .default
                .iter()
                .chain(spec.default_by.values().flat_map(|m| m.values()))
            {
                if let Some(why) = spec.check(d) {
                    return Err(schema_error(
                        spec.location.clone(),
                        format!("the default of `{name}`: {why}"),
                    ));
                }
            }
            variables.insert(name, spec);
        }
        Ok(Schema {
            path: path.to_path_buf(),
            variables,
            optional_groups: raw.optional_groups,
        })
    }

    /// The reference page of the variables (docs/reference/variables.md).
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "# The stack's variables\n\n\
             Generated from `playbooks/variables.yml` (a test fails when this page is stale). An\n\
             inventory sets only what differs from these defaults; `foobar vars HOST` shows each\n\
             value a host gets and where it came from. A value of the wrong type is refused at\n\
             load with its file and line.\n\n\
             | variable | type | default | since | what it is |\n|---|---|---|---|---|\n",
        );
        for (name, spec) in &self.variables {
            let default = match (&spec.default, &spec.required_with) {
                (Some(d), _) => {
                    let mut text = format!("`{}`", d.to_string().trim_matches('"'));
                    for (by, table) in &spec.default_by {
                        for (value, d) in table {
                            text.push_str(&format!(
                                "; `{}` with {by} `{value}`",
                                d.to_string().trim_matches('"')
                            ));
                        }
                    }
                    text
                }
                (None, Some(group)) => format!("required with hosts in `{group}`"),
                (None, None) => "unset".into(),
            };
            out.push_str(&format!(
                "| `{name}` | {} | {default} | {} | {} |\n",
                spec.kind.describe().replace('|', "\\|"),
                spec.since,
                spec.doc.replace('|', "\\|")
            ));
        }
        if !self.optional_groups.is_empty() {
            out.push_str(&format!(
                "\nGroups an inventory may leave out (that part of the stack is then off): {}.\n",
                self.optional_groups
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }

    /// The defaults a host with variables `vars` gets for what it does not set.
    pub fn defaults_for(&self, vars: &Vars) -> Vars {
        let mut out = Vars::new();
        for (name, spec) in &self.variables {
            let picked = spec.default_by.iter().find_map(|(by, table)| {
                vars.get(by)
                    .and_then(Value::as_str)
                    .and_then(|v| table.get(v))
            });
            if let Some(v) = picked.or(spec.default.as_ref()) {
                out.insert(name.clone(), v.clone());
            }
        }
        out
    }
}

/// Where each variable's value stands in the inventory file: `vars:`, each host's and each
/// group's `vars:`.
#[derive(Debug, Default, Deserialize)]
struct Shadow {
    #[serde(default)]
    vars: BTreeMap<String, Spanned<IgnoredAny>>,
    #[serde(default)]
    hosts: BTreeMap<String, Option<ShadowEntry>>,
    #[serde(default)]
    groups: BTreeMap<String, Option<ShadowEntry>>,
}

#[derive(Debug, Default, Deserialize)]
struct ShadowEntry {
    #[serde(default)]
    vars: BTreeMap<String, Spanned<IgnoredAny>>,
}

/// Values spanned by where they stand in the inventory file.
type Spans = BTreeMap<String, Spanned<IgnoredAny>>;

/// One layer of variables: its name in errors, its values, its location, their spans.
type Scope<'a> = (String, &'a Vars, Location, Option<&'a Spans>);

/// Checks every value the inventory sets against the schema, all at once; applies the
/// schema's defaults. Unknown variable names are warnings (a user's own templates may read
/// their own), with a did-you-mean over the schema's names.
pub fn apply(inv: &mut Inventory, schema: Schema) -> Result<(), Vec<InventoryError>> {
    let text = super::load::read(&inv.path).map_err(|e| vec![e])?;
    let shadow: Shadow = parse(&inv.path, &text).unwrap_or_default();
    let at = |spans: Option<&Spanned<IgnoredAny>>, fallback: &Location| {
        spans
            .map(|s| location_of(&inv.path, &s.referenced))
            .unwrap_or_else(|| fallback.clone())
    };
    let file = Location::file_only(&inv.path);
    let mut scopes: Vec<Scope> = vec![("vars".into(), &inv.vars, file.clone(), Some(&shadow.vars))];
    for (name, g) in &inv.groups {
        let spans = shadow
            .groups
            .get(name)
            .and_then(|e| e.as_ref())
            .map(|e| &e.vars);
        scopes.push((
            format!("group {name}'s vars"),
            &g.vars,
            g.location.clone(),
            spans,
        ));
    }
    for (name, h) in &inv.hosts {
        let spans = shadow
            .hosts
            .get(name.as_str())
            .and_then(|e| e.as_ref())
            .map(|e| &e.vars);
        scopes.push((
            format!("host {name}'s vars"),
            &h.vars,
            h.location.clone(),
            spans,
        ));
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let secrets: Vec<&str> = inv.secrets.keys().map(String::as_str).collect();
    for (scope, vars, fallback, spans) in &scopes {
        for (name, value) in vars.iter() {
            let location = at(spans.and_then(|s| s.get(name)), fallback);
            let spec = schema.variables.get(name);
            if spec.is_none()
                && let Some(why) = characters(value, true)
            {
                errors.push(InventoryError::Yaml {
                    location: location.clone(),
                    message: format!("`{name}` in {scope}: {why}"),
                    key_path: name.clone(),
                    hint: Some(format!("remove it from the value of `{name}`")),
                });
                continue;
            }
            match spec {
                Some(spec) => {
                    if let Some(why) = spec.check(value) {
                        errors.push(InventoryError::Yaml {
                            location,
                            message: format!("`{name}` in {scope}: {why}"),
                            key_path: name.clone(),
                            hint: Some(match spec.kind {
                                Kind::Bool => format!(
                                    "write `{name}: true` or `{name}: false`, without quotes ({}: {})",
                                    schema.path.display(),
                                    spec.doc
                                ),
                                _ => format!(
                                    "`{name}` is {} ({}: {})",
                                    spec.kind.describe(),
                                    schema.path.display(),
                                    spec.doc
                                ),
                            }),
                        });
                    }
                }
                None if secrets.contains(&name.as_str()) => {}
                None => {
                    let names = schema.variables.keys().map(String::as_str);
                    let mut w = format!(
                        "{location}: warning: `{name}` in {scope} is not a variable of the stack ({})",
                        schema.path.display()
                    );
                    if let Some(c) = did_you_mean(name, names) {
                        w.push_str(&format!("; did you mean `{c}`?"));
                    } else {
                        w.push_str("; only your own templates read it");
                    }
                    warnings.push(w);
                }
            }
        }
    }
    for (name, spec) in &schema.variables {
        let Some(group) = &spec.required_with else {
            continue;
        };
        let Some(g) = inv.groups.get(group) else {
            continue;
        };
        for host in &g.hosts {
            if !inv.host_vars(host).contains_key(name) {
                errors.push(missing(inv, host, name, spec, group));
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| {
            crate::error::Diagnostic::location(e).map(|l| (l.file.clone(), l.line, l.column))
        });
        return Err(errors);
    }
    inv.warnings.extend(warnings);
    for name in &schema.optional_groups {
        if !inv.groups.contains_key(name) && !inv.hosts.contains_key(&HostName::new(name.clone())) {
            inv.groups.insert(
                name.clone(),
                super::Group {
                    name: name.clone(),
                    hosts: vec![],
                    children: vec![],
                    vars: Vars::new(),
                    depth: 0,
                    location: file.clone(),
                },
            );
        }
    }
    inv.schema = Some(std::sync::Arc::new(schema));
    Ok(())
}

/// Where a host's variable got its value, lowest layer first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// The stack's default (`variables.yml`).
    Default { at: String },
    /// The inventory's `vars:`.
    Inventory { at: String },
    /// A group's vars.
    Group { group: String, at: String },
    /// The host's own vars.
    Host { at: String },
    /// Set by foobar (`inventory_hostname`, `private_ip`, `group_names`).
    Fact,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default { at } => write!(f, "default ({at})"),
            Source::Inventory { at } => write!(f, "inventory vars ({at})"),
            Source::Group { group, at } => write!(f, "group {group} ({at})"),
            Source::Host { at } => write!(f, "host vars ({at})"),
            Source::Fact => f.write_str("set by foobar"),
        }
    }
}

/// Each variable `host` sees, its value and where the value came from (the layer that won).
pub fn sources(inv: &Inventory, host: &HostName) -> Vec<(String, Value, Source)> {
    let text = std::fs::read_to_string(&inv.path).unwrap_or_default();
    let shadow: Shadow = parse(&inv.path, &text).unwrap_or_default();
    let line =
        |spans: Option<&BTreeMap<String, Spanned<IgnoredAny>>>, name: &str, fallback: &Location| {
            spans
                .and_then(|s| s.get(name))
                .map(|s| location_of(&inv.path, &s.referenced))
                .unwrap_or_else(|| fallback.clone())
                .to_string()
        };
    let file = Location::file_only(&inv.path);
    let mut out: BTreeMap<String, (Value, Source)> = BTreeMap::new();
    let base = inv.host_vars(host);
    if let Some(schema) = &inv.schema {
        for (name, v) in schema.defaults_for(&base) {
            let at = schema.variables[&name].location.to_string();
            out.insert(name, (v, Source::Default { at }));
        }
    }
    for (name, v) in &inv.vars {
        let at = line(Some(&shadow.vars), name, &file);
        out.insert(name.clone(), (v.clone(), Source::Inventory { at }));
    }
    for g in inv.groups_of(host) {
        let spans = shadow
            .groups
            .get(&g.name)
            .and_then(|e| e.as_ref())
            .map(|e| &e.vars);
        for (name, v) in &g.vars {
            let at = line(spans, name, &g.location);
            out.insert(
                name.clone(),
                (
                    v.clone(),
                    Source::Group {
                        group: g.name.clone(),
                        at,
                    },
                ),
            );
        }
    }
    let h = &inv.hosts[host];
    let spans = shadow
        .hosts
        .get(host.as_str())
        .and_then(|e| e.as_ref())
        .map(|e| &e.vars);
    for (name, v) in &h.vars {
        let at = line(spans, name, &h.location);
        out.insert(name.clone(), (v.clone(), Source::Host { at }));
    }
    for (name, v) in base {
        out.entry(name).or_insert((v, Source::Fact));
    }
    out.into_iter().map(|(k, (v, s))| (k, v, s)).collect()
}

fn missing(
    inv: &Inventory,
    host: &HostName,
    name: &str,
    spec: &VarSpec,
    group: &str,
) -> InventoryError {
    InventoryError::Topology {
        location: inv.hosts[host].location.clone(),
        message: format!("{host} is in group `{group}`, which needs `{name}`, and it is not set"),
        hint: format!(
            "set `{name}` under `vars:` (or under {host}'s vars) in {}: {}",
            inv.path.display(),
            spec.doc
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_takes_its_values_and_says_why_not() {
        assert_eq!(Kind::Bool.check(&json!(true)), None);
        assert_eq!(
            Kind::Bool.check(&json!("no")).unwrap(),
            "`no` is a string, where true or false is expected (YAML 1.2 reads only `true` and `false` as booleans)"
        );
        assert_eq!(Kind::Port.check(&json!(443)), None);
        assert_eq!(
            Kind::Port.check(&json!(70000)).unwrap(),
            "`70000` is not a port (1-65535)"
        );
        assert_eq!(Kind::Duration.check(&json!("100ms")), None);
        assert!(Kind::Duration.check(&json!("2 seconds")).is_some());
        let flavor = Kind::Enum(vec!["mariadb".into(), "mysql".into()]);
        assert_eq!(
            flavor.check(&json!("mysqll")).unwrap(),
            "`mysqll` is not one of `mariadb`, `mysql`; did you mean `mysql`?"
        );
        assert_eq!(
            flavor.check(&json!("postgres")).unwrap(),
            "`postgres` is not one of `mariadb`, `mysql`"
        );
        assert_eq!(Kind::Address.check(&json!("10.0.0.1")), None);
        assert_eq!(Kind::Address.check(&json!("db-1.example.com")), None);
        assert!(Kind::Address.check(&json!("-oProxyCommand=x")).is_some());
        assert_eq!(Kind::String.check(&json!(2)), None);
        assert!(
            characters(&json!("a\nb"), false)
                .unwrap()
                .contains("newline")
        );
        assert!(characters(&json!(["ok", "a\rb"]), false).is_some());
        assert_eq!(characters(&json!("a\nb"), true), None);
        assert!(
            characters(&json!({"k": "a\u{0}b"}), true)
                .unwrap()
                .contains("NUL")
        );
        assert_eq!(characters(&json!("it's \"#;$(x)\\ ünï "), false), None);
        assert!(Kind::Path.check(&json!("etc/x")).is_some());
        assert!(
            Kind::Path
                .check(&json!("/opt/my app"))
                .unwrap()
                .contains("holds ` `")
        );
        assert!(Kind::Path.check(&json!("/opt/$(id)")).is_some());
        assert_eq!(Kind::Path.check(&json!("/opt/foobar-1.2/app_x")), None);
    }

    #[test]
    fn the_stack_schema_loads_and_picks_defaults_by_flavor() {
        let s = Schema::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/playbooks/variables.yml"
        )))
        .unwrap();
        let mariadb = s.defaults_for(&Vars::new());
        assert_eq!(mariadb["mysql_package"], json!("mariadb-server"));
        assert_eq!(mariadb["flavor"], json!("mariadb"));
        let mysql = s.defaults_for(&Vars::from([("flavor".into(), json!("mysql"))]));
        assert_eq!(mysql["mysql_package"], json!("mysql-server"));
        assert_eq!(mysql["mysql_conf_dir"], json!("/etc/mysql/mysql.conf.d"));
        assert!(!mysql.contains_key("app_db_host_pattern"));
    }
}
