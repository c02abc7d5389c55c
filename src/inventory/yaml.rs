//! YAML parsing shared by the inventory and the playbook: serde-saphyr with YAML 1.2 booleans,
//! errors turned into [`InventoryError::Yaml`] with file:line:column, the key path, and a
//! "did you mean" for unknown keys.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::InventoryError;
use crate::error::{Location, did_you_mean};

fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // `yes`, `no`, `on`, `y` stay strings: a host named `no` must not become `false`.
    options.strict_booleans = true;
    // `mode: 0644` stays the text the user wrote.
    options.leading_zero_numbers_as_strings = true;
    options
}

pub(crate) fn location_of(path: &Path, loc: &serde_saphyr::Location) -> Location {
    Location::new(path, loc.line() as u32, loc.column() as u32)
}

pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, InventoryError> {
    let mut key_path = String::new();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            key_path = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|err| {
        let location = err
            .location()
            .map(|l| location_of(path, &l))
            .unwrap_or_else(|| Location::file_only(path));
        let raw = err.without_snippet().to_string();
        // saphyr appends " at line L, column C"; the location is printed separately.
        let mut message = match raw.rfind(" at line ") {
            Some(i) => raw[..i].to_string(),
            None => raw,
        };
        message = plain_type_names(&message);
        let mut syntax = false;
        if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
            let key = rest.split(", set DuplicateKeyPolicy").next().unwrap_or(rest);
            message = format!("duplicate key `{key}`");
        } else if !message.starts_with("unknown field")
            && !message.starts_with("unknown variant")
            && !message.starts_with("invalid")
            && !message.starts_with("missing field")
        {
            syntax = !message.contains("expected");
        }
        let key_path = clean_key_path(&key_path);
        if key_path.ends_with("port") && message.ends_with("expected a whole number from 0 to 65535")
        {
            // 0 is refused after parsing (`load::port`), with the same words.
            message = format!(
                "{}expected a TCP port, a whole number from 1 to 65535",
                message.trim_end_matches("expected a whole number from 0 to 65535")
            );
        }
        let hint = if message.starts_with("duplicate key") {
            Some("each key may appear once in a mapping; merge or rename the entries".to_string())
        } else if syntax {
            Some("YAML syntax error: check for an unclosed `[`, `{` or quote, or bad indentation, just before this point".to_string())
        } else {
            unknown_key_hint(&message).or_else(|| {
                (!key_path.is_empty() && key_path != "?")
                    .then(|| format!("the value at `{key_path}` does not have the expected type"))
            })
        };
        InventoryError::Yaml {
            location,
            message,
            key_path,
            hint,
        }
    })
}

/// serde_path_to_error shows `Spanned` wrappers as `.value`; users never wrote that.
fn clean_key_path(p: &str) -> String {
    p.replace(".value", "").trim_end_matches(".?").to_string()
}

/// "unknown field `adress`, expected one of address, port" -> "did you mean `address`?"
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (wanted, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest
        .split_once("expected one of ")
        .or_else(|| rest.split_once("expected "))
        .map(|(_, list)| {
            list.split(',')
                .map(|s| s.trim().trim_matches('`'))
                .collect()
        })
        .unwrap_or_default();
    match did_you_mean(wanted, expected.iter().copied()) {
        Some(candidate) => Some(format!("did you mean `{candidate}`?")),
        None if !expected.is_empty() => Some(format!("valid keys here: {}", expected.join(", "))),
        None => None,
    }
}

/// serde's Rust type names (`invalid u16`, `expected u64`) in words a user knows.
fn plain_type_names(message: &str) -> String {
    const NAMES: [(&str, &str); 8] = [
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number, 0 or more"),
        ("usize", "a whole number, 0 or more"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("bool", "true or false"),
    ];
    for (rust, words) in NAMES {
        if message == format!("invalid {rust}") {
            return format!("expected {words}");
        }
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            return format!("{head}expected {words}");
        }
    }
    message.to_string()
}
