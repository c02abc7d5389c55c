//! The stack's contract: every variable its playbooks and templates read, with a type, a
//! default or "required", and one line of doc, from `variables.yml` beside the playbook (as an
//! Ansible role's `defaults/main.yml` with its `argument_specs`, or a Helm chart's values
//! schema). Defaults are the lowest layer of [`super::Inventory::host_vars`]; every value an
//! inventory sets for a variable of the schema is checked against its type at load, with the
//! file and line of the value.

//!
//! Its parts: `kind` (what a value must be), `check` (the inventory's values against the
//! schema, at load), `provenance` (where each value a host sees came from), `docs` (the
//! reference page and the JSON Schema for editors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::InventoryError;
use super::yaml::{location_of, parse};
use crate::error::Location;
use crate::inventory::Vars;

mod check;
mod docs;
mod kind;
mod provenance;

pub use check::apply;
pub use kind::Kind;
pub use provenance::{Source, sources};

/// The schema's file name, beside the playbook.
pub const FILE_NAME: &str = "variables.yml";

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
    /// The smallest and largest whole number an `int` takes (`min:`, `max:`), inclusive.
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// May hold a newline (every string value of the stack is one line unless it says so:
    /// configuration files of one setting per line cannot carry more).
    pub multiline: bool,
}

impl VarSpec {
    /// Why `v` is not a value of this variable, if it is not: its type, then its range.
    pub fn check(&self, v: &Value) -> Option<String> {
        if let Some(why) = characters(v, self.multiline).or_else(|| self.kind.check(v)) {
            return Some(why);
        }
        if self.min.is_none() && self.max.is_none() {
            return None;
        }
        // Beyond i64 is beyond any range (the number is then above or below it).
        let n = v
            .as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))?;
        let low = self.min.map_or(i128::MIN, i128::from);
        let high = self.max.map_or(i128::MAX, i128::from);
        (!(low..=high).contains(&n)).then(|| format!("{n} is not {}", self.describe()))
    }

    /// The type in a user's words, with its range.
    pub fn describe(&self) -> String {
        match (self.min, self.max) {
            (None, None) => self.kind.describe(),
            (Some(l), Some(h)) => format!("{} from {l} to {h}", self.kind.describe()),
            (Some(l), None) => format!("{} of at least {l}", self.kind.describe()),
            (None, Some(h)) => format!("{} of at most {h}", self.kind.describe()),
        }
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
    /// The stack's roles (group names its plays target) and what each is.
    pub roles: BTreeMap<String, String>,
    /// The secrets the stack reads: name -> (doc, the group that needs it).
    pub secrets: BTreeMap<String, SecretSpec>,
}

/// A secret of the stack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    pub doc: String,
    /// Needed when this group has hosts.
    pub with: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    format: Spanned<u32>,
    #[serde(default)]
    optional_groups: Vec<String>,
    #[serde(default)]
    roles: BTreeMap<String, String>,
    variables: BTreeMap<String, Spanned<RawVar>>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSpec>,
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
    min: Option<i64>,
    max: Option<i64>,
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
        let text = crate::inventory::load::read(path)?;
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
            if (r.min.is_some() || r.max.is_some()) && kind != Kind::Int {
                return Err(schema_error(
                    location.clone(),
                    format!("variable `{name}` has `min:`/`max:`, which only an `int` takes"),
                ));
            }
            let spec = VarSpec {
                min: r.min,
                max: r.max,
                multiline: r.multiline,
                kind,
                default: r.default,
                default_by: r.default_by,
                required_with: r.required_with,
                doc: r.doc,
                since: r.since,
                location,
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
            roles: raw.roles,
            secrets: raw.secrets,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_value_carries_a_nul_and_one_line_values_no_newline() {
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
    fn an_int_keeps_its_range() {
        let spec = VarSpec {
            kind: Kind::Int,
            default: None,
            default_by: BTreeMap::new(),
            required_with: None,
            doc: String::new(),
            since: String::new(),
            location: Location::file_only("variables.yml"),
            min: Some(5),
            max: Some(3600),
            multiline: false,
        };
        assert_eq!(spec.check(&json!(30)), None);
        assert_eq!(spec.check(&json!(5)), None);
        assert_eq!(spec.check(&json!(3600)), None);
        assert_eq!(
            spec.check(&json!(u64::MAX)).unwrap(),
            "18446744073709551615 is not a whole number from 5 to 3600"
        );
        assert!(spec.check(&json!(-1)).is_some());
        assert!(spec.check(&json!(4)).is_some());
        assert!(spec.check(&json!(1.5)).is_some());
    }

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
        assert!(Kind::Path.check(&json!("etc/x")).is_some());
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
