//! Secret taint: one host's variables in, with its secrets kept apart; out a render's text
//! and the names of the secrets it read.
//!
//! Every render sees its variables through a `Scope` that records each secret looked up,
//! so a file is sensitive when its rendering read a secret, whatever filters the value went
//! through afterwards. A render that fails after reading a secret is rendered again with
//! placeholders, and that error is the one reported: minijinja's message may quote the value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr};

/// The variables of one host, with the secrets kept apart.
#[derive(Debug)]
pub(super) struct HostScope {
    pub(super) vars: BTreeMap<String, Value>,
    /// (real value, placeholder) by name.
    pub(super) secrets: BTreeMap<String, (Value, Value)>,
}

/// What one render sees as its variables: every lookup of a secret is recorded, so the
/// render's taint is known whatever the template did with the value afterwards.
#[derive(Debug)]
struct Scope {
    host: Arc<HostScope>,
    placeholders: bool,
    read: Mutex<BTreeSet<String>>,
}

impl Scope {
    fn new(host: &Arc<HostScope>, placeholders: bool) -> Arc<Self> {
        Arc::new(Self {
            host: host.clone(),
            placeholders,
            read: Mutex::new(BTreeSet::new()),
        })
    }

    fn read(&self) -> Vec<String> {
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

impl Object for Scope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if let Some((real, placeholder)) = self.host.secrets.get(name) {
            self.read
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string());
            return Some(if self.placeholders {
                placeholder.clone()
            } else {
                real.clone()
            });
        }
        self.host.vars.get(name).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self
            .host
            .vars
            .keys()
            .chain(self.host.secrets.keys())
            .map(|k| Value::from(k.as_str()))
            .collect();
        Enumerator::Values(keys)
    }
}

/// A failed render: the error to show and, when an escaping filter refused a value derived
/// from secrets, the names of those secrets (`` `a` or `b` ``).
pub(super) enum Refused {
    Secrets(minijinja::Error, String),
    Other(minijinja::Error),
}

impl Refused {
    /// The error, and what to add to its message (which secret holds the refused value).
    pub(super) fn split(self) -> (minijinja::Error, Option<String>) {
        match self {
            Refused::Secrets(e, names) => (e, Some(names)),
            Refused::Other(e) => (e, None),
        }
    }
}

/// Renders `text` (a template's source or a playbook string), recording the secrets it
/// reads. A failure after reading a secret is reported from a render with placeholders,
/// since minijinja's message may quote the value.
pub(super) fn render_tracked(
    scope: &Arc<HostScope>,
    render: impl Fn(Value) -> Result<String, minijinja::Error>,
) -> Result<(String, Vec<String>), Refused> {
    let tracked = Scope::new(scope, false);
    match render(Value::from_dyn_object(tracked.clone())) {
        Ok(text) => Ok((text, tracked.read())),
        Err(e) if tracked.read().is_empty() => Err(Refused::Other(e)),
        Err(e) => {
            let kind = e.kind();
            match render(Value::from_dyn_object(Scope::new(scope, true))) {
                Err(shown) => Err(Refused::Other(shown)),
                // Only the real value fails: say where, not what minijinja said, unless it
                // is an escaping filter's refusal, which never quotes the value: that error
                // (with its template line) is kept, and the secrets it may concern named.
                Ok(_)
                    if e.detail()
                        .is_some_and(|d| d.starts_with(super::escape::REFUSAL)) =>
                {
                    Err(Refused::Secrets(e, refused_secrets(scope, &tracked.read())))
                }
                Ok(_) => Err(Refused::Other(minijinja::Error::new(
                    kind,
                    "the failing value derives from a secret and is not shown",
                ))),
            }
        }
    }
}

/// The secrets among `read` whose value holds a character some file syntax cannot carry
/// (NUL, newline, CR, `$`), by name; all of `read` when none does.
fn refused_secrets(scope: &HostScope, read: &[String]) -> String {
    let holds = |name: &String| {
        scope.secrets.get(name).is_some_and(|(real, _)| {
            real.as_str()
                .is_some_and(|v| v.contains(['\0', '\n', '\r', '$']))
        })
    };
    let mut names: Vec<&String> = read.iter().filter(|n| holds(n)).collect();
    if names.is_empty() {
        names = read.iter().collect();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}
