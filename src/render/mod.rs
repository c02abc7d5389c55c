//! Render: Inventory + Playbook + secrets -> one [`DesiredState`] per host.
//!
//! Templates are minijinja with strict undefined variables, no auto-escaping, and Ansible's
//! whitespace rules (`trim_blocks` and `lstrip_blocks` on, trailing newline kept), so a block
//! tag on its own line leaves no blank line behind. Strings in the playbook (`dest`,
//! `packages`, `owner`, service names) are templates too. Everything that is the same for all
//! hosts (template parsing, synced directories read from disk, `hostvars`) is done once in
//! [`RenderContext::new`]; per host only the variables differ.
//!
//! Secrets are tainting: every render sees its variables through a `Scope` that records
//! which secrets it read, so a file is sensitive when its rendering read a secret, whatever
//! filters the value went through (`upper`, `replace`, `urlencode`, `~`). A sensitive file's
//! body is never shown; a render that fails after reading a secret is reported from a second
//! render with placeholders (the error may quote the value); and strings outside file bodies
//! (`dest`, owners, packages, services) may not read secrets at all. Every render runs on a
//! fuel budget (`limits.template_fuel`) and every file is bounded (`limits.max_file_size`).
//!
//! In: a loaded [`Inventory`](crate::inventory::Inventory) and
//! [`Playbook`](crate::inventory::Playbook), the run's resolved secrets, the templates and
//! synced directories on disk. Out: a [`DesiredState`] per host (or a [`RenderError`] naming
//! the template or playbook line, the host and a hint), and for `render --out` where each
//! rendered file goes ([`out_path`]) and the one writer under it ([`write_out`]).
//!
//! Its parts:
//! - `context`: [`RenderContext`], the work shared by every host of a run, and the rendering
//!   of one template or playbook string for a host;
//! - `host`: [`RenderContext::render_host`], a host's plays assembled into its desired state;
//! - `desired`: what comes out ([`DesiredState`], [`DesiredPlay`], [`DesiredEntry`], [`EntryKind`]);
//! - `environment`: the minijinja environment, foobar's filters and the templates parsed once;
//! - [`escape`]: a value as data in each file syntax (`env`, `mycnf`, `haproxy`, `nginx`, `yaml`, ...);
//! - `taint`: the variables a render sees, recording which secrets it read;
//! - `sync_tree`: synced directories read from disk once, with the size limit;
//! - `check`: rendered values checked against the inventory's rules, no path managed twice;
//! - `error`: [`RenderError`] and minijinja errors turned into file:line and hints;
//! - `out`: where `render --out DIR` writes a rendered path, never outside DIR.

mod check;
mod context;
mod desired;
mod environment;
mod error;
pub mod escape;
mod host;
mod out;
mod sync_tree;
mod taint;

pub use context::RenderContext;
pub use desired::{DesiredEntry, DesiredPlay, DesiredState, EntryKind, Firewall};
pub use error::RenderError;
pub use out::{OutPathError, OutWriteError, out_path, write as write_out};

use sha2::{Digest, Sha256};

/// A digest as foobar shows and compares it: SHA-256, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
