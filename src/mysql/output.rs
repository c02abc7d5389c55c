//! Reading what the command-line client prints: `--batch` result sets (tab-separated, escaped,
//! a header line per non-empty result set) and `\G` vertical records.

use crate::error::Diagnostic;

/// The client's output could not be read. `line` is 1-based; 0 means the output as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if *.line == 0 { String::new() } else { format!("line {}: ", .line) })]
pub struct ParseError {
    pub line: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl ParseError {
    pub(crate) fn at(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl Diagnostic for ParseError {
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// A server's message on one line (its error texts may span several).
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One value and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// One row: its fields by column name, and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<Field>,
}

impl Record {
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A `--batch` result set: the header's column names and the rows under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Record>,
}

/// Undoes `--batch` escaping: `\\`, `\t`, `\n`, `\0` (and `\r`, which some clients emit).
pub(crate) fn unescape_batch(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Splits `--batch` output into result sets. A line is a header when `is_header` says so
/// (the caller knows the first column names its statements produce); every other line is a
/// row of the current result set and must have as many fields as its header.
pub(crate) fn batch_result_sets(
    text: &str,
    is_header: impl Fn(&[&str]) -> bool,
) -> Result<Vec<ResultSet>, ParseError> {
    let mut sets: Vec<ResultSet> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let fields: Vec<&str> = raw.split('\t').collect();
        if is_header(&fields) {
            sets.push(ResultSet {
                columns: fields.iter().map(|f| f.to_string()).collect(),
                rows: Vec::new(),
            });
            continue;
        }
        let Some(set) = sets.last_mut() else {
            if raw.trim().is_empty() {
                continue;
            }
            return Err(ParseError::at(
                line,
                format!("expected a column header, found `{}`", clip(raw)),
            )
            .with_hint("run the client with --batch and without --skip-column-names or --raw"));
        };
        if fields.len() != set.columns.len() {
            return Err(ParseError::at(
                line,
                format!(
                    "expected {} tab-separated fields under the header `{}`, found {}",
                    set.columns.len(),
                    clip(&set.columns.join(" ")),
                    fields.len()
                ),
            )
            .with_hint("run the client with --batch and without --raw, so tabs and newlines in values are escaped"));
        }
        set.rows.push(Record {
            line,
            fields: set
                .columns
                .iter()
                .zip(&fields)
                .map(|(name, value)| Field {
                    name: name.clone(),
                    value: unescape_batch(value),
                    line,
                })
                .collect(),
        });
    }
    Ok(sets)
}

/// Reads `\G` output: `*** N. row ***` banners, then `Name: value` lines whose names are
/// right-aligned so every colon sits in the same column. A line without a name at that
/// column continues the previous value (MySQL prints GTID sets over several lines).
/// `N rows in set` / `Empty set` lines, as an interactive client prints them, are ignored.
pub(crate) fn vertical_records(text: &str) -> Result<Vec<Record>, ParseError> {
    let mut records: Vec<Record> = Vec::new();
    let mut colon: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if is_banner(raw) {
            records.push(Record {
                line,
                fields: Vec::new(),
            });
            colon = None;
            continue;
        }
        let Some(record) = records.last_mut() else {
            if raw.trim().is_empty() || is_summary(raw) {
                continue;
            }
            return Err(ParseError::at(
                line,
                format!("expected a `*** 1. row ***` line, found `{}`", clip(raw)),
            )
            .with_hint("pass the output of a statement ended by \\G"));
        };
        let col = match colon {
            Some(c) => c,
            None => match name_colon(raw) {
                Some(c) => {
                    colon = Some(c);
                    c
                }
                None => {
                    return Err(ParseError::at(
                        line,
                        format!("expected `Name: value`, found `{}`", clip(raw)),
                    ));
                }
            },
        };
        if name_colon(raw) == Some(col) {
            let name = raw[..col].trim_start().to_string();
            let value = raw[col + 1..].strip_prefix(' ').unwrap_or(&raw[col + 1..]);
            record.fields.push(Field {
                name,
                value: value.to_string(),
                line,
            });
        } else if is_summary(raw) && raw.trim() == raw {
            continue;
        } else if let Some(last) = record.fields.last_mut() {
            last.value.push('\n');
            last.value.push_str(raw);
        } else {
            return Err(ParseError::at(
                line,
                format!("expected `Name: value`, found `{}`", clip(raw)),
            ));
        }
    }
    Ok(records)
}

/// The byte index of the colon after a right-aligned column name, if `line` starts so.
fn name_colon(line: &str) -> Option<usize> {
    let name_start = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[name_start..];
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if name_len == 0 || !rest[..name_len].starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let after = &rest[name_len..];
    if after == ":" || after.starts_with(": ") {
        Some(name_start + name_len)
    } else {
        None
    }
}

fn is_banner(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("***") && t.ends_with("***") && t.contains(". row")
}

fn is_summary(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("Empty set")
        || (t.contains(" in set") && t.starts_with(|c: char| c.is_ascii_digit()))
}

/// A line shortened for an error message.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_batch_fields() {
        assert_eq!(unescape_batch(r"a\tb\nc\\d\0e"), "a\tb\nc\\d\0e");
        assert_eq!(unescape_batch(r"plain"), "plain");
        assert_eq!(unescape_batch(r"odd\x"), r"odd\x");
        assert_eq!(unescape_batch("end\\"), "end\\");
    }

    #[test]
    fn splits_result_sets_by_header() {
        let text = "k\tv\na\t1\nb\tx\\ty\nk\tv\tw\nc\t2\t3\n";
        let sets = batch_result_sets(text, |f| f[0] == "k").unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].rows[1].get("v").unwrap().value, "x\ty");
        assert_eq!(sets[0].rows[1].line, 3);
        assert_eq!(sets[1].rows[0].get("w").unwrap().value, "3");
    }

    #[test]
    fn batch_errors_name_the_line() {
        let e = batch_result_sets("a\t1\n", |f| f[0] == "k").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(
            e.to_string()
                .starts_with("line 1: expected a column header")
        );
        assert!(e.hint.unwrap().contains("--skip-column-names"));
        let e = batch_result_sets("k\tv\na\t1\nraw\ttab\tinside\n", |f| f[0] == "k").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: expected 2 tab-separated fields under the header `k v`, found 3"
        );
    }

    #[test]
    fn name_like_text_in_a_value_stays_in_the_value() {
        // An error message that spans lines, one of which looks like `Name: value` but is
        // not aligned with the column names.
        let text = "\
*************************** 1. row ***************************
 Last_SQL_Errno: 1062
 Last_SQL_Error: Could not execute Write_rows event
Query: 'INSERT INTO t VALUES (1)'
  Last_IO_Errno: 0
";
        let r = vertical_records(text).unwrap();
        assert_eq!(
            r[0].get("Last_SQL_Error").unwrap().value,
            "Could not execute Write_rows event\nQuery: 'INSERT INTO t VALUES (1)'"
        );
        assert_eq!(r[0].get("Last_IO_Errno").unwrap().value, "0");
    }

    #[test]
    fn reads_aligned_vertical_records() {
        let text = "\
*************************** 1. row ***************************
             Replica_IO_State: Waiting for source to send event
              Replicate_Do_DB:
            Executed_Gtid_Set: 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,
4f22ab58-71ca-11e1-9e33-c80aa9429562:1-2
                 Channel_Name: 
*************************** 2. row ***************************
    A: 1
1 row in set (0.00 sec)
";
        let r = vertical_records(text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].get("Replicate_Do_DB").unwrap().value, "");
        assert_eq!(
            r[0].get("Executed_Gtid_Set").unwrap().value,
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4f22ab58-71ca-11e1-9e33-c80aa9429562:1-2"
        );
        assert_eq!(r[0].get("Channel_Name").unwrap().line, 6);
        assert_eq!(r[1].get("A").unwrap().value, "1");
        assert!(vertical_records("").unwrap().is_empty());
        assert!(
            vertical_records("Empty set (0.00 sec)\n")
                .unwrap()
                .is_empty()
        );
        let e = vertical_records("Slave_IO_State: x\n").unwrap_err();
        assert_eq!(e.line, 1);
    }
}
