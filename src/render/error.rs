//! Why rendering failed: a minijinja error (or a read, a rule, a size) in, a [`RenderError`]
//! out that names the template's file:line:column or the playbook's line, the host, and a
//! hint (did-you-mean for an undefined variable close to a defined one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::ErrorKind;

use crate::error::{Diagnostic, Location};
use crate::inventory::HostName;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{message}")]
    Template {
        location: Location,
        host: HostName,
        message: String,
        hint: Option<String>,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}")]
    Invalid {
        location: Location,
        host: HostName,
        message: String,
        hint: String,
    },
    #[error("{path} is {size} bytes, over the limit of {limit} bytes for a managed file")]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        location: Location,
    },
}

impl Diagnostic for RenderError {
    fn location(&self) -> Option<&Location> {
        match self {
            RenderError::Template { location, .. }
            | RenderError::Invalid { location, .. }
            | RenderError::TooLarge { location, .. } => Some(location),
            RenderError::Read { .. } => None,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            RenderError::Template { hint, host, .. } => Some(match hint {
                Some(h) => format!("{h} (while rendering for host {host})"),
                None => format!("while rendering for host {host}"),
            }),
            RenderError::Invalid { hint, .. } => Some(hint.clone()),
            RenderError::TooLarge { .. } => Some(
                "leave the file out, or raise `limits: { max_file_size: BYTES }` in the playbook"
                    .into(),
            ),
            RenderError::Read { .. } => Some("check the file exists and is readable".into()),
        }
    }
}

/// Byte offset -> (line, column), both 1-based.
fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line as u32, column as u32)
}

/// Where an error points. minijinja points an undefined value given to a filter
/// (`{{ groups.webx | join(" ") }}`) at the filter: the undefined expression is the one
/// before the `|`.
fn error_range(e: &minijinja::Error, source: Option<&str>) -> Option<std::ops::Range<usize>> {
    let r = e.range()?;
    if e.kind() != ErrorKind::UndefinedError {
        return Some(r);
    }
    let Some(s) = source else { return Some(r) };
    let before = s.get(..r.start)?.trim_end();
    let Some(before) = before.strip_suffix('|') else {
        return Some(r);
    };
    let before = before.trim_end();
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace() || *c == '{' || *c == '(')
        .map_or(0, |(i, c)| i + c.len_utf8());
    if start >= before.len() {
        return Some(r);
    }
    Some(start..before.len())
}

pub(super) fn describe(e: &minijinja::Error, source: Option<&str>) -> String {
    let snippet = error_range(e, source)
        .zip(source)
        .and_then(|(r, s)| s.get(r))
        .map(str::trim);
    match (e.kind(), snippet) {
        (ErrorKind::UndefinedError, Some(s)) => format!("undefined variable '{s}'"),
        (ErrorKind::UndefinedError, None) => "undefined variable".to_string(),
        (ErrorKind::OutOfFuel, _) => match e.name() {
            Some(name) => format!("template `{name}` ran out of fuel"),
            None => "rendering ran out of fuel".to_string(),
        },
        (ErrorKind::SyntaxError, _) => format!(
            "template syntax error: {}",
            e.detail().unwrap_or("invalid syntax")
        ),
        _ => match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        },
    }
}

pub(super) fn hint_for(e: &minijinja::Error, host: &HostName, fuel: u64) -> Option<String> {
    match e.kind() {
        ErrorKind::OutOfFuel => Some(format!(
            "the template did more than {fuel} steps of work (an endless or very long loop?); \
             if it is meant to, raise `limits: {{ template_fuel: N }}` in the playbook"
        )),
        ErrorKind::UndefinedError => Some(format!(
            "define it under `vars:` in the inventory: for all hosts, for a group {host} belongs to, or for {host} itself"
        )),
        ErrorKind::SyntaxError => {
            Some("see https://docs.rs/minijinja for the template syntax".to_string())
        }
        _ => None,
    }
}

/// The name in a template error's `undefined variable 'NAME'` message ([`describe`]).
pub(super) fn undefined_name(message: &str) -> Option<&str> {
    message
        .strip_prefix("undefined variable '")
        .and_then(|m| m.strip_suffix('\''))
}

/// An undefined variable close to one the host has (`app_prot` for `app_port`): say so
/// first in the hint.
pub(super) fn suggest_variable<'a>(err: &mut RenderError, names: impl Iterator<Item = &'a str>) {
    let RenderError::Template { message, hint, .. } = err else {
        return;
    };
    let Some(name) = undefined_name(message) else {
        return;
    };
    let root: String = name
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if root.len() < name.len() {
        // `groups.webx`, `hostvars['web-09'].x`: a lookup in a defined value, not a
        // misspelt variable.
        let names: Vec<&str> = names.collect();
        if names.contains(&root.as_str()) {
            let what = match root.as_str() {
                "groups" => " (a group of the inventory)",
                "hostvars" => " (a host of the inventory)",
                _ => "",
            };
            *message = format!(
                "`{root}` has no `{}`",
                name[root.len()..].trim_start_matches('.')
            );
            *hint = Some(format!("check the name looked up in `{root}`{what}"));
        }
        return;
    }
    if let Some(close) = crate::error::did_you_mean(name, names) {
        *hint = Some(match hint.take() {
            Some(h) => format!("did you mean `{close}`? Otherwise {h}"),
            None => format!("did you mean `{close}`?"),
        });
    }
}

/// `unknown filter: filter uppper is unknown` -> ``unknown filter `uppper` `` with a "did you
/// mean `upper`?" from the filters that exist.
pub(super) fn suggest_filter(err: &mut RenderError) {
    let RenderError::Template { message, hint, .. } = err else {
        return;
    };
    let Some(name) = message
        .strip_prefix("unknown filter: filter ")
        .and_then(|m| m.strip_suffix(" is unknown"))
    else {
        return;
    };
    let name = name.to_string();
    *message = format!("unknown filter `{name}`");
    *hint = Some(
        match crate::error::did_you_mean(&name, super::environment::FILTERS.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None => "the filters are listed in docs/reference/templates.md".to_string(),
        },
    );
}

pub(super) fn template_error(
    templates_dir: &Path,
    sources: &BTreeMap<String, String>,
    e: minijinja::Error,
    host: &HostName,
    fuel: u64,
) -> RenderError {
    let name = e.name().unwrap_or("?").to_string();
    let source = sources.get(&name).map(String::as_str);
    let (line, column) = match (error_range(&e, source), source) {
        (Some(r), Some(s)) => line_column(s, r.start),
        _ => (e.line().unwrap_or(0) as u32, 0),
    };
    let mut err = RenderError::Template {
        location: Location::new(templates_dir.join(&name), line, column),
        host: host.clone(),
        message: describe(&e, source),
        hint: hint_for(&e, host, fuel),
    };
    suggest_filter(&mut err);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name the "did you mean" of an unknown filter offers is a filter.
    #[test]
    fn every_listed_filter_exists() {
        let playbook = crate::inventory::Playbook {
            path: "site.yml".into(),
            templates_dir: "templates".into(),
            project: ".".into(),
            keep_backups: 0,
            plays: vec![],
            limits: Default::default(),
            warnings: Vec::new(),
        };
        let (env, _) = super::super::environment::environment(&playbook).unwrap();
        for name in super::super::environment::FILTERS {
            let e = env.render_str(&format!("{{{{ 'a' | {name} }}}}"), ()).err();
            assert!(
                e.as_ref()
                    .is_none_or(|e| e.kind() != ErrorKind::UnknownFilter),
                "{name}: {e:?}"
            );
        }
    }

    #[test]
    fn line_column_is_one_based() {
        let s = "ab\ncd {{ x }}\n";
        assert_eq!(line_column(s, 0), (1, 1));
        assert_eq!(line_column(s, 6), (2, 4));
    }
}
