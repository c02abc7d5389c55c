//! The minijinja environment of one run: the playbook in (its templates' names, the templates
//! directory, `limits.template_fuel`), out an [`Environment`] with foobar's filters and every
//! template parsed once, and each template's source (for line:column in errors).
//!
//! Undefined variables are errors, nothing is auto-escaped, and Ansible's whitespace rules
//! apply (`trim_blocks`, `lstrip_blocks`, trailing newline kept). Filters foobar adds:
//! `sql_string`, `sha256`, `shell_quote`, `mysql_native_password_hash`, and one escaping
//! filter per file syntax ([`super::escape`]: `env`, `systemd`, `mycnf`, `goini`, `haproxy`,
//! `nginx`, `yaml`, `json`, `sql`, `cidr`, `keepalived`).

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use super::error::{RenderError, template_error};
use super::escape;
use super::sha256_hex;
use crate::inventory::{HostName, Playbook};

/// Every filter a template can use: minijinja's, minijinja-contrib's and foobar's. For the
/// "did you mean" of an unknown filter (minijinja does not list its filters); a test checks
/// each one exists.
pub(super) const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "pluralize",
    "sql_string",
    "sha256",
    "shell_quote",
    "mysql_native_password_hash",
    "env",
    "systemd",
    "mycnf",
    "goini",
    "haproxy",
    "nginx",
    "yaml",
    "json",
    "sql",
    "cidr",
    "keepalived",
];

/// The environment every render of the run uses, and the templates' sources by name.
pub(super) fn environment(
    playbook: &Playbook,
) -> Result<(Environment<'static>, BTreeMap<String, String>), RenderError> {
    let mut env = Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("static syntax config"),
    );
    env.add_filter("sql_string", sql_string);
    // A file's fingerprint in another (a certificate's in the server config that loads it),
    // so that a new certificate changes the config and its handler restarts the server.
    env.add_filter("sha256", |value: String| sha256_hex(value.as_bytes()));
    env.set_fuel(Some(playbook.limits.template_fuel));
    env.add_filter("shell_quote", |v: String| crate::gather::sh_quote(&v));
    env.add_filter("env", |v: Value| escape::env(&v));
    env.add_filter("systemd", |v: Value| escape::systemd(&v));
    env.add_filter("mycnf", |v: Value| escape::mycnf(&v));
    env.add_filter("goini", |v: Value| escape::goini(&v));
    env.add_filter("haproxy", |v: Value| escape::haproxy(&v));
    env.add_filter("nginx", |v: Value| escape::nginx(&v));
    env.add_filter("yaml", |v: Value| escape::json(&v));
    env.add_filter("json", |v: Value| escape::json(&v));
    env.add_filter("sql", |v: Value| escape::sql(&v));
    env.add_filter("cidr", |v: Value| escape::cidr(&v));
    env.add_filter("keepalived", |v: Value| escape::keepalived(&v));
    env.add_filter("mysql_native_password_hash", |v: String| {
        crate::mysql::mysql_native_password_hash(&v)
    });

    let mut names: Vec<String> = playbook
        .plays
        .iter()
        .flat_map(|p| p.files.iter().filter_map(|f| f.template.clone()))
        .collect();
    names.sort();
    names.dedup();
    let mut sources = BTreeMap::new();
    for name in names {
        // Checked at load, and again here: a template is a regular file inside the project
        // (never /proc/self/environ, nor a link out), read with O_NOFOLLOW once resolved.
        let path = playbook.templates_dir.join(&name);
        let real = crate::inventory::project::confine(
            &playbook.project,
            &path,
            crate::inventory::project::Expect::File,
        )
        .map_err(|why| RenderError::Read {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
        })?;
        let source = crate::confined::read_regular_text(&real, playbook.limits.max_file_size)
            .map_err(|e| RenderError::Read {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        sources.insert(name, source);
    }
    for (name, source) in &sources {
        if let Err(e) = env.add_template_owned(name.clone(), source.clone()) {
            return Err(template_error(
                &playbook.templates_dir,
                &sources,
                e,
                &HostName::new("(all hosts)"),
                playbook.limits.template_fuel,
            ));
        }
    }
    Ok((env, sources))
}

fn sql_string(value: String) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_string_escapes_quotes_and_backslashes() {
        assert_eq!(sql_string("a'b\\c".into()), "a\\'b\\\\c");
    }
}
