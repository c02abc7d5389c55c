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

/// Replace the file at `path` with `text` as one atomic step, as the user's editor would:
/// the file a symlink names is edited (the link stays), its mode is kept, and the new text
/// goes through a temp file of a fresh name created exclusively beside it (never one that
/// exists, so a planted symlink is not followed), synced before the rename.
pub fn replace_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let target = std::fs::canonicalize(path)?;
    let mode = std::fs::metadata(&target)?.permissions().mode() & 0o7777;
    let dir = target.parent().unwrap_or(std::path::Path::new("/"));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(
            ".{name}.foobar-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1
            }
            Err(e) => return Err(e),
        }
    };
    let written = (|| {
        file.write_all(text.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
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

    /// Once a fixed `inventory.yml.foobar-tmp` written with `fs::write`: a symlink planted at
    /// that name made foobar overwrite the file it pointed to, the inventory lost its mode
    /// (0644 for a 0600 file), and a symlinked inventory became a copy.
    #[test]
    fn the_edited_inventory_keeps_its_mode_and_link_and_follows_no_planted_link() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("production.yml");
        std::fs::write(&real, "old\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("current.yml");
        std::os::unix::fs::symlink("production.yml", &link).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "victim\n").unwrap();
        for planted in ["current.yml.foobar-tmp", "production.yml.foobar-tmp"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        replace_file(&link, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new\n");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::metadata(&real).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".foobar-") && !n.ends_with("foobar-tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
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
