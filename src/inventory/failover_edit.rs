//! After a failover, the inventory must say which host is the primary, or the next `plan`
//! would point everything back at the old one. foobar edits it for the user, minimally: in
//! the `db_primary` group's block the old primary's name becomes the new one's, and in the
//! `db_replica` group's block the other way round. Nothing else moves (comments, order,
//! layout are kept); the caller shows the result as a diff. When the groups are not written
//! in a shape this edit understands, it says which lines to change instead.

use crate::error::Location;

/// Why the edit could not be made: the user changes these lines by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditRefused {
    pub location: Location,
    pub message: String,
}

/// `text` with `old` and `new` swapped in the blocks of groups `db_primary` (starting at
/// 1-based line `primary_line`) and `db_replica` (`replica_line`).
pub fn swap_primary(
    text: &str,
    path: &std::path::Path,
    primary_line: usize,
    replica_line: usize,
    old: &str,
    new: &str,
) -> Result<String, EditRefused> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
    let refuse = |line: usize, message: String| EditRefused {
        location: Location::new(path, line as u32, 0),
        message,
    };
    for (start, from, to, group) in [
        (primary_line, old, new, "db_primary"),
        (replica_line, new, old, "db_replica"),
    ] {
        let replaced = replace_in_block(&mut lines, start, from, to);
        if replaced != 1 {
            return Err(refuse(
                start,
                format!(
                    "group {group} should list {to} instead of {from}, and foobar could not make that edit itself ({} places found)",
                    replaced
                ),
            ));
        }
    }
    Ok(lines.concat())
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Replace `from` by `to` as a whole name, outside comments, in the block that starts at
/// 1-based `start` (that line and the more indented ones after it). Returns how many.
fn replace_in_block(lines: &mut [String], start: usize, from: &str, to: &str) -> usize {
    let Some(first) = lines.get(start.wrapping_sub(1)) else {
        return 0;
    };
    let base = indent(first);
    let mut count = 0;
    for (i, line) in lines.iter_mut().enumerate().skip(start - 1) {
        let blank = line.trim().is_empty() || line.trim_start().starts_with('#');
        if i >= start && !blank && indent(line) <= base {
            break;
        }
        let (code, comment) = match line.find('#') {
            Some(p) => line.split_at(p),
            None => (line.as_str(), ""),
        };
        let mut out = String::new();
        let mut rest = code;
        while let Some(p) = rest.find(from) {
            let before = rest[..p].chars().last();
            let after = rest[p + from.len()..].chars().next();
            let name_char = |c: Option<char>| {
                c.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
            };
            out.push_str(&rest[..p]);
            if name_char(before) || name_char(after) {
                out.push_str(from);
            } else {
                out.push_str(to);
                count += 1;
            }
            rest = &rest[p + from.len()..];
        }
        out.push_str(rest);
        out.push_str(comment);
        *line = out;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = "groups:\n  # the primary takes every write\n  db_primary:\n    hosts: [web-01]  # web-01 is big\n  db_replica:\n    hosts:\n      - web-02\n      - web-03\n  web:\n    hosts: [web-01, web-02]\n";

    #[test]
    fn swaps_only_inside_the_two_groups_and_keeps_comments() {
        let out = swap_primary(INV, "inv.yml".as_ref(), 3, 5, "web-01", "web-02").unwrap();
        assert_eq!(
            out,
            "groups:\n  # the primary takes every write\n  db_primary:\n    hosts: [web-02]  # web-01 is big\n  db_replica:\n    hosts:\n      - web-01\n      - web-03\n  web:\n    hosts: [web-01, web-02]\n"
        );
    }

    #[test]
    fn names_the_line_when_it_cannot_edit() {
        let e = swap_primary(INV, "inv.yml".as_ref(), 3, 5, "web-09", "web-02").unwrap_err();
        assert_eq!(e.location.to_string(), "inv.yml:3");
        assert!(
            e.message
                .contains("group db_primary should list web-02 instead of web-09")
        );
        // web-010 is not web-01.
        let odd = INV.replace("[web-01]", "[web-010]");
        assert!(swap_primary(&odd, "inv.yml".as_ref(), 3, 5, "web-01", "web-02").is_err());
    }
}
