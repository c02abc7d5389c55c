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
    // Tags are refused before (`refuse_silent_readings`); these keep the library's own
    // checks on too.
    options.reject_unsupported_tags = true;
    options.reject_tagged_field_names = true;
    options
}

pub(crate) fn location_of(path: &Path, loc: &serde_saphyr::Location) -> Location {
    Location::new(path, loc.line() as u32, loc.column() as u32)
}

/// The tags a value may carry: YAML 1.2's core schema (`!!str 0644` says "a string").
const CORE_TAGS: &[&str] = &["str", "int", "float", "bool", "null", "seq", "map"];

/// What the deserializer would take silently, refused first with its line: a tag it does not
/// know (`!vault`, which would be ignored), `!!binary` (decoded into text without a word) and
/// other tags outside the core schema, and a plain integer beyond 64 bits (which became a
/// float, its digits lost).
fn refuse_silent_readings(path: &Path, text: &str) -> Result<(), InventoryError> {
    use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
    let at = |span: &serde_saphyr::granit_parser::Span| {
        Location::new(path, span.start.line() as u32, span.start.col() as u32 + 1)
    };
    for event in Parser::new_from_str(text) {
        // A syntax error is the deserializer's to report, in its words.
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let (tag, scalar) = match &event {
            Event::Scalar(value, style, _, tag) => (tag.as_deref(), Some((value, *style))),
            Event::SequenceStart(_, _, tag) | Event::MappingStart(_, _, tag) => {
                (tag.as_deref(), None)
            }
            _ => (None, None),
        };
        if let Some(tag) = tag {
            let core = tag.handle() == "tag:yaml.org,2002:" && CORE_TAGS.contains(&tag.suffix());
            // `!` alone is YAML's non-specific tag: "a string", as quoting.
            let plain = tag.handle() == "!" && tag.suffix().is_empty();
            if !core && !plain {
                let shown = if tag.handle() == "tag:yaml.org,2002:" {
                    format!("!!{}", tag.suffix())
                } else {
                    format!("{}{}", tag.handle(), tag.suffix())
                };
                return Err(InventoryError::Yaml {
                    location: at(&span),
                    message: format!("the YAML tag `{}` is not one foobar reads", shown.escape_debug()),
                    key_path: String::new(),
                    hint: Some(
                        "write the value itself (a secret goes under `secrets:`, as `env:` or `file:`); tags other than !!str, !!int, !!float, !!bool, !!null, !!seq and !!map are refused, not ignored"
                            .into(),
                    ),
                });
            }
        }
        if let Some((value, ScalarStyle::Plain)) = scalar
            && tag.is_none()
        {
            let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
            let decimal = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !(digits.len() > 1 && digits.starts_with('0'));
            if decimal && value.parse::<i64>().is_err() && value.parse::<u64>().is_err() {
                return Err(InventoryError::Yaml {
                    location: at(&span),
                    message: format!(
                        "the number {value} does not fit in 64 bits (it would be read as an approximate float)"
                    ),
                    key_path: String::new(),
                    hint: Some("write a smaller number, or quote it to keep it as text".into()),
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, InventoryError> {
    refuse_silent_readings(path, text)?;
    let mut key_path = String::new();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            key_path = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|err| {
        let mut location = err
            .location()
            .map(|l| location_of(path, &l))
            .unwrap_or_else(|| Location::file_only(path));
        let raw = err.without_snippet().to_string();
        // saphyr appends " at line L, column C"; the location is printed separately.
        let library = match raw.rfind(" at line ") {
            Some(i) => raw[..i].to_string(),
            None => raw,
        };
        let key_path = named_plays(&clean_key_path(&key_path), text);
        let top = key_path.is_empty() || key_path == "." || key_path == "?";
        // `groups.web.hosts`, or "the file" at the top level.
        let here = if top {
            "the top level of the file".to_string()
        } else if let Some((play, tail)) = key_path
            .strip_prefix("plays[")
            .and_then(|r| r.rsplit_once(']'))
            .filter(|(_, tail)| tail.starts_with('.'))
        {
            format!("`{}` of play `{play}`", &tail[1..])
        } else {
            format!("`{key_path}`")
        };
        let (message, hint) = if let Some(rest) = library.strip_prefix("duplicate mapping key: ") {
            let key = rest.split(", set DuplicateKeyPolicy").next().unwrap_or(rest);
            (
                format!("duplicate key `{key}`"),
                Some("each key may appear once in a mapping; merge or rename the entries".to_string()),
            )
        } else if library.contains("found a tab") {
            // saphyr points at the token before; the tab is what is wrong.
            if let Some(tab) = first_tab_from(text, location.line, location.column) {
                location = Location::new(path, tab.0, tab.1);
            }
            (
                "a tab character: YAML indents with spaces only".to_string(),
                Some("replace the tab with spaces".to_string()),
            )
        } else if library.starts_with("alias references unknown anchor") {
            let alias = word_at(text, location.line, location.column)
                .unwrap_or_else(|| "*…".to_string());
            let name = alias.trim_start_matches('*');
            (
                format!("`{alias}` refers to no anchor: nothing before it is marked `&{name}`"),
                Some(format!(
                    "mark the value to reuse with `&{name}` before this line, or write the value here"
                )),
            )
        } else if library.starts_with("budget breached") {
            // serde_saphyr's budget (nodes, aliases, depth) stops an alias bomb before it
            // expands; say so, rather than blame the syntax.
            (
                "this YAML expands beyond foobar's budget (too many nodes, aliases or levels): \
                 aliases (`*name`) that repeat anchors which repeat others grow exponentially"
                    .to_string(),
                Some(
                    "write the values out, or reuse fewer levels of anchors; an inventory needs no more than a few thousand values"
                        .to_string(),
                ),
            )
        } else if library == "unexpected end of input" && top {
            // No line to show: the file as a whole.
            location = Location::file_only(path);
            (
                format!("{} holds no YAML document: it is empty or only comments", path.display()),
                Some("see docs/reference/inventory.md and docs/reference/playbook.md for what goes in it".to_string()),
            )
        } else if library == "expected sequence start" {
            (
                format!("expected a list at {here}"),
                Some("write a list, `[a, b]` or one `- item` per line; a single item is a list of one: `[a]`".to_string()),
            )
        } else if library == "expected mapping start" {
            (
                format!("expected a mapping at {here}"),
                Some("write `key: value` lines indented under it, or `{key: value}`".to_string()),
            )
        } else if let Some(rest) = library.strip_prefix("missing field ") {
            let where_ = if top {
                "at the top level".to_string()
            } else {
                format!("under {here}")
            };
            (
                format!("{rest} is missing at {here}"),
                Some(format!("add `{}:` {where_}", rest.trim_matches('`'))),
            )
        } else if let Some(rest) = library.strip_prefix("unknown variant ") {
            // "`sshh`, expected one of ssh, local"
            let (value, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
            let expected = expected.trim_start_matches("one of ");
            let choices: Vec<String> = expected
                .split(',')
                .map(|c| format!("`{}`", c.trim().trim_matches('`')))
                .collect();
            (
                format!("{here} is {value}, which is not one of {}", choices.join(", ")),
                unknown_key_hint(&library),
            )
        } else if library.starts_with("unknown field")
            || library.starts_with("invalid")
            || library.contains("expected")
        {
            let mut message = plain_type_names(&library);
            if key_path.ends_with("port")
                && message.ends_with("expected a whole number from 0 to 65535")
            {
                // 0 is refused after parsing (`load::port`), with the same words.
                message = format!(
                    "{}expected a TCP port, a whole number from 1 to 65535",
                    message.trim_end_matches("expected a whole number from 0 to 65535")
                );
            }
            let hint = unknown_key_hint(&message).or_else(|| {
                (!top).then(|| format!("the value at {here} does not have the expected type"))
            });
            (message, hint)
        } else {
            (
                library,
                Some("YAML syntax error: check for an unclosed `[`, `{` or quote, or bad indentation, just before this point".to_string()),
            )
        };
        InventoryError::Yaml {
            location,
            message,
            key_path,
            hint,
        }
    })
}

/// Where `key:`'s value is inside the block of keys that starts at `block` (a host's or
/// group's first key): the line of a block (indented at least as deep) or one flow mapping.
/// For values that keep no position of their own (`vars:`).
pub(crate) fn key_in_block(text: &str, block: &Location, key: &str) -> Option<Location> {
    let first = block.line.checked_sub(1)? as usize;
    let indent = block.column.saturating_sub(1) as usize;
    for (i, line) in text.lines().enumerate().skip(first) {
        let trimmed = line.trim_start();
        let depth = line.len() - trimmed.len();
        if i > first && !trimmed.is_empty() && !trimmed.starts_with('#') && depth < indent {
            break;
        }
        let mut from = 0;
        while let Some(at) = line[from..].find(key).map(|a| a + from) {
            from = at + key.len();
            let before = line[..at].chars().last();
            let after = line[from..].trim_start();
            if before.is_none_or(|c| c.is_whitespace() || c == '{' || c == ',')
                && after.starts_with(':')
            {
                let value = after[1..].trim_start();
                let column = line.len() - value.len();
                return Some(Location::new(&block.file, i as u32 + 1, column as u32 + 1));
            }
        }
    }
    None
}

/// Where the key of a block mapping's value is, the value starting at `value` (serde-saphyr
/// keeps no position for map keys): on the value's own line when something precedes it there
/// (`web-01: {address: x}`), else the nearest line above that is indented less.
pub(crate) fn key_of(text: &str, value: &Location) -> Location {
    let Some(index) = (value.line as usize).checked_sub(1) else {
        return value.clone();
    };
    let lines: Vec<&str> = text.lines().collect();
    let column = value.column.saturating_sub(1) as usize;
    let key_at = |i: usize, line: &str| {
        let depth = line.len() - line.trim_start().len();
        Location::new(&value.file, i as u32 + 1, depth as u32 + 1)
    };
    if let Some(line) = lines.get(index)
        && line.get(..column).is_some_and(|b| !b.trim().is_empty())
    {
        return key_at(index, line);
    }
    for i in (0..index.min(lines.len())).rev() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.len() - trimmed.len() < column {
            return key_at(i, line);
        }
    }
    value.clone()
}

/// The first tab at or after `line:column` (1-based), as 1-based line and column.
fn first_tab_from(text: &str, line: u32, column: u32) -> Option<(u32, u32)> {
    for (i, l) in text
        .lines()
        .enumerate()
        .skip(line.saturating_sub(1) as usize)
    {
        let from = if i + 1 == line as usize {
            column.saturating_sub(1) as usize
        } else {
            0
        };
        let chars: Vec<char> = l.chars().collect();
        if let Some(c) = (from..chars.len()).find(|&c| chars[c] == '\t') {
            return Some((i as u32 + 1, c as u32 + 1));
        }
    }
    None
}

/// The word (up to a space, `,`, `]` or `}`) at `line:column`, 1-based.
fn word_at(text: &str, line: u32, column: u32) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)? as usize)?;
    let rest: String = l.chars().skip(column.saturating_sub(1) as usize).collect();
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !",]}".contains(*c))
        .collect();
    (!word.is_empty()).then_some(word)
}

/// `plays[1].packages` -> `plays[two].packages`: a play is known by its name, not by a
/// 0-based index (the playbook is read again, loosely, only for the names).
fn named_plays(key_path: &str, text: &str) -> String {
    let Some(rest) = key_path.strip_prefix("plays[") else {
        return key_path.to_string();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return key_path.to_string();
    };
    let Ok(index) = index.parse::<usize>() else {
        return key_path.to_string();
    };
    let doc: Option<serde_json::Value> = serde_saphyr::from_str(text).ok();
    match doc
        .as_ref()
        .and_then(|d| d.get("plays"))
        .and_then(|p| p.get(index))
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
    {
        Some(name) => format!("plays[{name}]{tail}"),
        None => format!("plays[{}]{tail}", index + 1),
    }
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
