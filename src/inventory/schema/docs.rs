//! The schema as a reference page (docs/reference/variables.md) and as a JSON Schema of the
//! inventory, for editors.

use serde_json::Value;

use super::{Kind, Schema};

impl Schema {
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
                spec.describe().replace('|', "\\|"),
                spec.since,
                spec.doc.replace('|', "\\|")
            ));
        }
        if !self.roles.is_empty() {
            out.push_str(
                "\n## Roles\n\nThe groups the stack's plays target. An inventory maps a role to a group of another\n\
                 name in one line (`roles: { web: frontends }`).\n\n| role | what it is | may be left out |\n|---|---|---|\n",
            );
            for (role, doc) in &self.roles {
                let optional = if self.optional_groups.contains(role) {
                    "yes"
                } else {
                    "no"
                };
                out.push_str(&format!("| `{role}` | {doc} | {optional} |\n"));
            }
        }
        if !self.secrets.is_empty() {
            out.push_str(
                "\n## Secrets\n\nDeclared under the inventory's `secrets:` (`{ file: PATH }` or `{ env: NAME }`), never\n\
                 under `vars:`; their values are never shown.\n\n| secret | what it is |\n|---|---|\n",
            );
            for (name, spec) in &self.secrets {
                let with = spec
                    .with
                    .as_ref()
                    .map(|g| format!(" Needed with hosts in `{g}`."))
                    .unwrap_or_default();
                out.push_str(&format!("| `{name}` | {}{with} |\n", spec.doc));
            }
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

    /// A JSON Schema (draft 2020-12) of an inventory for this stack, for editors
    /// (`# yaml-language-server: $schema=…`): the inventory's keys, each stack variable's type,
    /// default and doc. Checked at load by foobar itself either way.
    pub fn json_schema(&self) -> Value {
        use serde_json::json;
        let mut vars = serde_json::Map::new();
        for (name, spec) in &self.variables {
            let mut t = match &spec.kind {
                Kind::String => json!({ "type": ["string", "number"] }),
                Kind::Bool => json!({ "type": "boolean" }),
                Kind::Int => json!({ "type": "integer" }),
                Kind::Port => json!({ "type": "integer", "minimum": 1, "maximum": 65535 }),
                Kind::Duration => json!({ "type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$" }),
                Kind::Address => json!({ "type": "string" }),
                Kind::Path => json!({ "type": "string", "pattern": "^/" }),
                Kind::Enum(values) => json!({ "enum": values }),
                Kind::List => json!({ "type": "array" }),
                Kind::Map => json!({ "type": "object" }),
            };
            t["description"] = json!(spec.doc);
            if let Some(d) = &spec.default {
                t["default"] = d.clone();
            }
            vars.insert(name.clone(), t);
        }
        let vars = json!({ "type": "object", "properties": vars });
        let secret = json!({
            "type": "object",
            "properties": { "env": { "type": "string" }, "file": { "type": "string" } },
            "minProperties": 1, "maxProperties": 1, "additionalProperties": false
        });
        let secrets: serde_json::Map<String, Value> = self
            .secrets
            .iter()
            .map(|(n, s)| {
                let mut v = secret.clone();
                v["description"] = json!(s.doc);
                (n.clone(), v)
            })
            .collect();
        let roles: serde_json::Map<String, Value> = self
            .roles
            .iter()
            .map(|(r, doc)| (r.clone(), json!({ "type": "string", "description": doc })))
            .collect();
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "foobar inventory",
            "type": "object",
            "required": ["hosts"],
            "properties": {
                "ssh": { "type": "object" },
                "vars": vars,
                "secrets": { "type": "object", "properties": secrets, "additionalProperties": secret },
                "hosts": {
                    "type": "object",
                    "additionalProperties": {
                        "type": ["object", "null"],
                        "properties": {
                            "address": { "type": "string" },
                            "private_ip": { "type": "string" },
                            "user": { "type": "string" },
                            "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                            "identity_file": { "type": "string" },
                            "become": { "type": "boolean" },
                            "connection": { "enum": ["ssh", "local"] },
                            "vars": vars,
                        },
                        "additionalProperties": false
                    }
                },
                "groups": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "hosts": { "type": "array", "items": { "type": "string" } },
                            "children": { "type": "array", "items": { "type": "string" } },
                            "vars": vars,
                        },
                        "additionalProperties": false
                    }
                },
                "roles": { "type": "object", "properties": roles, "additionalProperties": false },
                "backups": { "type": "object" }
            },
            "additionalProperties": false
        })
    }
}
