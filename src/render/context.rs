//! The work shared by every host of one run, and the rendering of one template or playbook
//! string for one host: the inventory, playbook and secrets in, text and the secrets it read
//! out. Parsing templates, reading synced directories and building `hostvars` happen once, in
//! [`RenderContext::new`]; per host only the variables differ.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, Value};

use super::environment::environment;
use super::error::{RenderError, describe, hint_for, suggest_variable, template_error};
use super::sync_tree::{SyncTree, read_trees};
use super::taint::{HostScope, render_tracked};
use crate::error::Location;
use crate::inventory::{HostName, Inventory, Playbook, Secrets, Vars};
use crate::secret::Redactor;

/// The work shared by every host of one run.
pub struct RenderContext<'a> {
    env: Environment<'static>,
    sources: BTreeMap<String, String>,
    pub inventory: &'a Inventory,
    pub playbook: &'a Playbook,
    secrets: &'a Secrets,
    pub redactor: Redactor,
    hostvars: Value,
    groups: Value,
    pub(super) sync_trees: BTreeMap<PathBuf, SyncTree>,
    /// Every rendered body once, by SHA-256: hosts that get the same file (a load
    /// balancer's list of backends, a site config) share one copy, so memory grows with the
    /// distinct bodies, not with hosts × bodies.
    bodies: std::sync::Mutex<std::collections::HashMap<String, Arc<[u8]>>>,
}

impl<'a> RenderContext<'a> {
    pub fn new(
        inventory: &'a Inventory,
        playbook: &'a Playbook,
        secrets: &'a Secrets,
    ) -> Result<Self, RenderError> {
        let (env, sources) = environment(playbook)?;

        let mut hostvars = BTreeMap::new();
        for host in inventory.hosts.keys() {
            hostvars.insert(host.0.clone(), inventory.host_vars(host));
        }
        let groups: BTreeMap<&str, Vec<&str>> = inventory
            .groups
            .iter()
            .map(|(n, g)| (n.as_str(), g.hosts.iter().map(|h| h.as_str()).collect()))
            .collect();
        Ok(Self {
            env,
            sources,
            inventory,
            playbook,
            secrets,
            redactor: Redactor::new(secrets.values()),
            hostvars: Value::from(minijinja::value::Serde(&hostvars)),
            groups: Value::from(minijinja::value::Serde(&groups)),
            sync_trees: read_trees(playbook)?,
            bodies: Default::default(),
        })
    }

    /// `text`'s one shared copy, and its SHA-256.
    pub(super) fn intern(&self, text: String) -> (Arc<[u8]>, String) {
        let digest = super::sha256_hex(text.as_bytes());
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        let body = bodies
            .entry(digest.clone())
            .or_insert_with(|| text.into_bytes().into())
            .clone();
        (body, digest)
    }

    /// The variables a template sees on `host`: its variables, foobar's, and the secrets.
    pub(super) fn host_scope(&self, host: &HostName, extra: &Vars) -> Arc<HostScope> {
        let mut vars: BTreeMap<String, Value> = self
            .inventory
            .host_vars(host)
            .into_iter()
            .map(|(k, v)| (k, Value::from(minijinja::value::Serde(&v))))
            .collect();
        for (k, v) in extra {
            vars.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
        }
        vars.insert("groups".into(), self.groups.clone());
        vars.insert("hostvars".into(), self.hostvars.clone());
        if let Some(b) = &self.inventory.backups {
            vars.insert("backups".into(), Value::from(minijinja::value::Serde(b)));
        }
        let secrets = self
            .secrets
            .iter()
            .map(|(name, secret)| {
                vars.remove(name);
                (
                    name.clone(),
                    (
                        Value::from(secret.expose()),
                        Value::from(crate::secret::placeholder(name)),
                    ),
                )
            })
            .collect();
        Arc::new(HostScope { vars, secrets })
    }

    /// A playbook string (`dest`, owner, package, service): may not read a secret, since it
    /// is shown in every plan.
    pub(super) fn render_string(
        &self,
        host: &HostName,
        scope: &Arc<HostScope>,
        text: &str,
        location: &Location,
    ) -> Result<String, RenderError> {
        let (out, reads) = self.render_text(host, scope, text, location)?;
        if let Some(name) = reads.first() {
            return Err(RenderError::Invalid {
                location: location.clone(),
                host: host.clone(),
                message: format!(
                    "`{text}` reads the secret `{name}`, but paths, owners, packages and service names are shown in every plan"
                ),
                hint: "use secrets only in file contents (templates or `content:`)".into(),
            });
        }
        Ok(out)
    }

    /// Inline `content:` or a playbook string, with the secrets it read.
    pub(super) fn render_text(
        &self,
        host: &HostName,
        scope: &Arc<HostScope>,
        text: &str,
        location: &Location,
    ) -> Result<(String, Vec<String>), RenderError> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok((text.to_string(), vec![]));
        }
        render_tracked(scope, |ctx| self.env.render_str(text, ctx)).map_err(|refused| {
            let (e, secrets) = refused.split();
            let mut err = RenderError::Template {
                location: match e.line() {
                    Some(line) if e.kind() == ErrorKind::OutOfFuel => {
                        Location::new(&location.file, location.line + line as u32 - 1, 0)
                    }
                    _ => location.clone(),
                },
                host: host.clone(),
                message: describe(&e, Some(text)),
                hint: hint_for(&e, host, self.playbook.limits.template_fuel),
            };
            name_refused(&mut err, secrets, scope, Some(text));
            err
        })
    }

    pub(super) fn absolute_path(
        &self,
        host: &HostName,
        ctx: &Arc<HostScope>,
        text: &str,
        location: &Location,
    ) -> Result<String, RenderError> {
        let path = self.render_string(host, ctx, text, location)?;
        if !path.starts_with('/') {
            return Err(RenderError::Invalid {
                location: location.clone(),
                host: host.clone(),
                message: format!("path `{text}` renders to `{path}`, which is not absolute"),
                hint: "paths on hosts must start with /".into(),
            });
        }
        Ok(path)
    }

    /// A template's output and the secrets its rendering read.
    pub(super) fn render_template(
        &self,
        host: &HostName,
        name: &str,
        scope: &Arc<HostScope>,
    ) -> Result<(String, Vec<String>), RenderError> {
        let template = self.env.get_template(name).map_err(|e| {
            template_error(
                &self.playbook.templates_dir,
                &self.sources,
                e,
                host,
                self.playbook.limits.template_fuel,
            )
        })?;
        render_tracked(scope, |ctx| template.render(ctx)).map_err(|refused| {
            let (e, secrets) = refused.split();
            let line = e
                .name()
                .zip(e.line())
                .and_then(|(name, line)| self.sources.get(name)?.lines().nth(line.checked_sub(1)?));
            let mut err = template_error(
                &self.playbook.templates_dir,
                &self.sources,
                e,
                host,
                self.playbook.limits.template_fuel,
            );
            suggest_variable(
                &mut err,
                scope
                    .vars
                    .keys()
                    .chain(scope.secrets.keys())
                    .map(String::as_str),
            );
            self.secret_hint(&mut err);
            name_refused(&mut err, secrets, scope, line);
            err
        })
    }
}

impl RenderContext<'_> {
    /// An undefined name that is one of the stack's secrets: say where secrets go, never
    /// "define it under `vars:`" (that invites a key in plain text).
    fn secret_hint(&self, err: &mut RenderError) {
        let RenderError::Template { message, hint, .. } = err else {
            return;
        };
        let Some(name) = super::error::undefined_name(message) else {
            return;
        };
        let Some(spec) = self
            .inventory
            .schema
            .as_ref()
            .and_then(|s| s.secrets.get(name))
        else {
            return;
        };
        *hint = Some(format!(
            "`{name}` is a secret ({}): declare it under `secrets:` in {}, e.g. `{name}: {{ file: secrets/{name} }}` (a 0600 file) or `{{ env: FOOBAR_{} }}`; never under `vars:`",
            spec.doc.trim_end_matches('.'),
            self.inventory.path.display(),
            name.to_ascii_uppercase()
        ));
    }
}

/// An escaping filter's refusal says what cannot be written where; this adds whose value it
/// is: the secrets the render read that hold it (`secrets`), or else the host's variables
/// whose values hold the refused character, those named on the failing template `line` first.
/// Values are never shown.
fn name_refused(
    err: &mut RenderError,
    secrets: Option<String>,
    scope: &HostScope,
    line: Option<&str>,
) {
    let RenderError::Template { message, hint, .. } = err else {
        return;
    };
    let Some(at) = message.find(super::escape::REFUSAL) else {
        return;
    };
    let why = message[at + super::escape::REFUSAL.len()..].to_string();
    let whose = match secrets {
        Some(names) => format!("the secret {names}"),
        None => {
            let c = refused_character(&why);
            let holding: Vec<&String> = scope
                .vars
                .iter()
                .filter(|(_, v)| c.is_none_or(|c| v.to_string().contains(c)))
                .map(|(k, _)| k)
                .collect();
            let on_line: Vec<&String> = holding
                .iter()
                .copied()
                .filter(|k| {
                    line.is_some_and(|l| {
                        l.match_indices(k.as_str()).any(|(i, _)| {
                            let word = |c: char| c.is_alphanumeric() || c == '_';
                            !l[..i].ends_with(word) && !l[i + k.len()..].starts_with(word)
                        })
                    })
                })
                .collect();
            // Without a character to look for, only the names on the failing line say whose.
            let names: Vec<String> = match (on_line.is_empty(), c) {
                (false, _) => on_line,
                (true, Some(_)) => holding,
                (true, None) => vec![],
            }
            .iter()
            .map(|k| format!("`{k}`"))
            .collect();
            if names.is_empty() {
                "a value".to_string()
            } else {
                format!("the value of {}", names.join(" or "))
            }
        }
    };
    *message = format!("{whose}: {why}");
    let change = "change the value (in the inventory or the secret's source): this file's syntax cannot carry it, and foobar writes no file it cannot quote";
    *hint = Some(match hint.take() {
        Some(h) => format!("{h}; {change}"),
        None => change.to_string(),
    });
}

/// The character a refusal names (`a newline`, `` `$` ``).
fn refused_character(why: &str) -> Option<char> {
    if why.starts_with("a newline") {
        Some('\n')
    } else if why.starts_with("a carriage return") {
        Some('\r')
    } else if why.starts_with("a NUL byte") {
        Some('\0')
    } else if let Some(rest) = why.strip_prefix('`') {
        rest.chars().next()
    } else {
        None
    }
}
