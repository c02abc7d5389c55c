//! `group_vars/` and `host_vars/` beside the inventory file: each file's variables in, merged
//! into the loaded inventory's group, host or global `vars`; a file that names no group or
//! host is an error naming the file, with a did-you-mean.

use std::path::Path;

use super::load::read;
use super::yaml::parse;
use super::{HostName, Inventory, InventoryError, Vars};
use crate::error::did_you_mean;

/// The largest var file read: 16 MiB.
const MAX_VAR_FILE: u64 = 16 << 20;

/// `group_vars/NAME.yml` and `host_vars/NAME.yml` (or `.yaml`) beside the inventory, as in
/// Ansible: each file is a mapping of variables added to that group's (`all`: the global) or
/// host's inline `vars:`, the file winning on a name both set. Precedence between levels is
/// unchanged (global < groups < host). A file naming no group or host is an error.
pub(super) fn load_var_files(inv: &mut Inventory) -> Result<(), InventoryError> {
    let dir = inv.path.parent().unwrap_or(Path::new("."));
    for kind in ["group_vars", "host_vars"] {
        let Ok(entries) = std::fs::read_dir(dir.join(kind)) else {
            continue;
        };
        // Every entry named like a var file, whatever its type: a link or a FIFO is refused
        // below, not skipped (nor followed).
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .map(|e| e.path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
            .collect();
        files.sort();
        for file in files {
            let name = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let text = match crate::confined::read_regular_text(&file, MAX_VAR_FILE) {
                Ok(text) => text,
                Err(crate::confined::ReadError::Io { .. }) => read(&file)?,
                Err(e) => {
                    return Err(InventoryError::UnsafeFile {
                        location: crate::error::Location::file_only(&file),
                        message: format!("{e}: foobar reads var files that are regular files only"),
                        hint: format!(
                            "copy the variables into {} itself (a link may point at a file of secrets, whose lines would then be shown in errors)",
                            file.display()
                        ),
                    });
                }
            };
            let vars: Vars = if text.trim().is_empty() {
                Vars::new()
            } else {
                parse(&file, &text)?
            };
            let target = if kind == "host_vars" {
                inv.hosts
                    .get_mut(&HostName::new(name.clone()))
                    .map(|h| &mut h.vars)
            } else if name == "all" && !inv.groups.contains_key("all") {
                Some(&mut inv.vars)
            } else {
                inv.groups.get_mut(&name).map(|g| &mut g.vars)
            };
            match target {
                Some(target) => target.extend(vars),
                None => return Err(var_file_error(inv, &file, kind, &name)),
            }
        }
    }
    Ok(())
}

fn var_file_error(inv: &Inventory, file: &Path, kind: &str, name: &str) -> InventoryError {
    let (what, names): (&str, Vec<&str>) = if kind == "host_vars" {
        ("host", inv.hosts.keys().map(|h| h.as_str()).collect())
    } else {
        (
            "group",
            std::iter::once("all")
                .chain(inv.groups.keys().map(String::as_str))
                .collect(),
        )
    };
    let hint = match did_you_mean(name, names.iter().copied()) {
        Some(c) => format!("did you mean `{kind}/{c}.yml`?"),
        None => format!(
            "name the file after a {what} of {}: {}",
            inv.path.display(),
            names.join(", ")
        ),
    };
    InventoryError::Topology {
        location: crate::error::Location::file_only(file),
        message: format!("{kind}/{name} names no {what} of the inventory"),
        hint,
    }
}
