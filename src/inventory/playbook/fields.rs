//! Checks on one playbook value as written (a path, an account, a mode, a package or service
//! name): a [`Spanned`] string in, the value out, or an [`InventoryError::Playbook`] at its
//! line with a hint. A value that is a `{{ template }}` is checked once rendered instead.

use std::path::Path;

use serde_saphyr::Spanned;

use crate::error::Location;
use crate::inventory::InventoryError;
use crate::inventory::rules;
use crate::inventory::yaml::location_of;

pub(super) const SERVICE_HINT: &str =
    "name a systemd unit as systemctl takes it, e.g. `nginx` or `foobar-app.service`";

pub(super) fn playbook_error(
    location: Location,
    message: String,
    hint: Option<String>,
) -> InventoryError {
    InventoryError::Playbook {
        location,
        message,
        hint,
    }
}

/// Paths must be absolute; one that starts with a `{{ variable }}` is checked after rendering.
pub(super) fn absolute(
    path: &Path,
    s: &Spanned<String>,
    what: &str,
) -> Result<String, InventoryError> {
    if s.value.starts_with('/') || s.value.starts_with("{{") {
        if !s.value.contains("{{")
            && let Err(why) = rules::check_path(&s.value)
        {
            return Err(playbook_error(
                location_of(path, &s.referenced),
                format!("{what} `{}` {why}", s.value.escape_debug()),
                Some("write paths on hosts absolute and normalized, e.g. `/etc/app/app.conf`, without `..`, `//` or control characters".into()),
            ));
        }
        Ok(s.value.clone())
    } else {
        Err(playbook_error(
            location_of(path, &s.referenced),
            format!("{what} `{}` is not an absolute path", s.value),
            Some(format!(
                "write it from the root, e.g. `/{}`",
                s.value.trim_start_matches("./")
            )),
        ))
    }
}

/// A value checked by `rule` unless it is a template (checked once rendered).
pub(super) fn checked(
    path: &Path,
    s: &Spanned<String>,
    what: &str,
    rule: fn(&str) -> Result<(), rules::RuleViolation>,
    hint: &str,
) -> Result<String, InventoryError> {
    if !s.value.contains("{{")
        && let Err(why) = rule(&s.value)
    {
        return Err(playbook_error(
            location_of(path, &s.referenced),
            format!("{what} `{}` {why}", s.value.escape_debug()),
            Some(hint.to_string()),
        ));
    }
    Ok(s.value.clone())
}

pub(super) fn account(
    path: &Path,
    s: Option<&Spanned<String>>,
    what: &str,
) -> Result<String, InventoryError> {
    match s {
        Some(s) => checked(
            path,
            s,
            what,
            rules::check_account,
            "name an existing user or group, e.g. `root` or `www-data`",
        ),
        None => Ok("root".into()),
    }
}

pub(super) fn parse_mode(
    path: &Path,
    mode: Option<&Spanned<String>>,
    default: u32,
) -> Result<u32, InventoryError> {
    let Some(m) = mode else {
        return Ok(default);
    };
    u32::from_str_radix(m.value.trim_start_matches("0o"), 8)
        .ok()
        .filter(|v| *v <= 0o7777)
        .ok_or_else(|| {
            playbook_error(
                location_of(path, &m.referenced),
                format!("mode `{}` is not an octal file mode", m.value),
                Some("write it as a quoted octal string, e.g. \"0644\"".into()),
            )
        })
}
