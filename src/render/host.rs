//! One host's desired state: the playbook's plays for the host in, each rendered (`when:`,
//! directories, files, links, synced trees, packages, services, handlers), out a checked
//! [`DesiredState`] in play order.

use std::path::Path;

use super::check::{check_duplicate_paths, check_rendered};
use super::context::RenderContext;
use super::desired::{DesiredEntry, DesiredPlay, DesiredState, EntryKind};
use super::error::RenderError;
use crate::inventory::{FileState, HostName, ServiceSpec, Vars};

impl RenderContext<'_> {
    /// Render everything the playbook wants on one host.
    pub fn render_host(&self, host: &HostName) -> Result<DesiredState, RenderError> {
        let ctx = self.host_scope(host, &Vars::new());
        let limit = self.playbook.limits.max_file_size;
        let mut plays = Vec::new();
        for play in self
            .playbook
            .plays
            .iter()
            .filter(|p| p.hosts.contains(host))
        {
            let at = &play.location;
            if let Some(when) = &play.when {
                let v = self.render_string(host, &ctx, when, at)?;
                let v = v.trim().to_ascii_lowercase();
                if matches!(v.as_str(), "" | "false" | "no" | "0" | "none" | "off") {
                    continue;
                }
            }
            let mut entries = Vec::new();
            for d in &play.directories {
                entries.push(DesiredEntry {
                    path: self.absolute_path(host, &ctx, &d.path, &d.location)?,
                    kind: EntryKind::Directory {
                        mode: d.mode,
                        owner: self.render_string(host, &ctx, &d.owner, &d.location)?,
                        group: self.render_string(host, &ctx, &d.group, &d.location)?,
                    },
                    notify: vec![],
                    origin: "directories".into(),
                });
            }
            for f in &play.files {
                let dest = self.absolute_path(host, &ctx, &f.dest, &f.location)?;
                if dest == "/" {
                    return Err(RenderError::Invalid {
                        location: f.location.clone(),
                        host: host.clone(),
                        message: format!(
                            "file `dest: {}` renders to `/`, the root directory, which no file can replace",
                            f.dest
                        ),
                        hint: "a file's `dest:` is the file's own path, e.g. `/etc/app/app.conf`"
                            .into(),
                    });
                }
                if f.state == FileState::Absent {
                    entries.push(DesiredEntry {
                        path: dest,
                        kind: EntryKind::Absent,
                        notify: f.notify.clone(),
                        origin: "state: absent".into(),
                    });
                    continue;
                }
                let ((text, reads), origin) = match (&f.template, &f.content) {
                    (Some(t), _) => (self.render_template(host, t, &ctx)?, t.clone()),
                    (None, Some(c)) => (
                        self.render_text(host, &ctx, c, &f.location)?,
                        "content".to_string(),
                    ),
                    (None, None) => unreachable!("checked when the playbook was loaded"),
                };
                if text.len() as u64 > limit {
                    return Err(RenderError::TooLarge {
                        path: format!("{dest} (rendered from {origin} for {host})"),
                        size: text.len() as u64,
                        limit,
                        location: f.location.clone(),
                    });
                }
                let (content, digest) = self.intern(text);
                entries.push(DesiredEntry {
                    path: dest.clone(),
                    kind: EntryKind::File {
                        digest,
                        // Taint, not text matching; the text check stays as a backstop for
                        // a value that reached the output without a lookup being seen.
                        sensitive: f.sensitive
                            || !reads.is_empty()
                            || self.redactor.contains_secret(&content),
                        reads,
                        content,
                        mode: f.mode,
                        owner: self.render_string(host, &ctx, &f.owner, &f.location)?,
                        group: self.render_string(host, &ctx, &f.group, &f.location)?,
                        validate: f.validate.clone(),
                    },
                    notify: f.notify.clone(),
                    origin: origin.clone(),
                });
                if let Some(link) = &f.link {
                    entries.push(DesiredEntry {
                        path: self.absolute_path(host, &ctx, link, &f.location)?,
                        kind: EntryKind::Link { target: dest },
                        notify: f.notify.clone(),
                        origin,
                    });
                }
            }
            for s in &play.sync {
                let dest = self.absolute_path(host, &ctx, &s.dest, &s.location)?;
                let owner = self.render_string(host, &ctx, &s.owner, &s.location)?;
                let group = self.render_string(host, &ctx, &s.group, &s.location)?;
                let mut dirs: Vec<String> = vec![dest.clone()];
                for (rel, _, _, _) in &self.sync_trees[&s.src] {
                    let mut p = Path::new(rel).parent();
                    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                        dirs.push(format!("{dest}/{}", d.display()));
                        p = d.parent();
                    }
                }
                dirs.sort();
                dirs.dedup();
                for d in dirs {
                    entries.push(DesiredEntry {
                        path: d,
                        kind: EntryKind::Directory {
                            mode: 0o755,
                            owner: owner.clone(),
                            group: group.clone(),
                        },
                        notify: vec![],
                        origin: s.src.display().to_string(),
                    });
                }
                for (rel, content, digest, exec) in &self.sync_trees[&s.src] {
                    entries.push(DesiredEntry {
                        path: format!("{dest}/{rel}"),
                        kind: EntryKind::File {
                            content: content.clone(),
                            digest: digest.clone(),
                            mode: if *exec { 0o755 } else { 0o644 },
                            owner: owner.clone(),
                            group: group.clone(),
                            validate: None,
                            sensitive: s.sensitive,
                            reads: vec![],
                        },
                        notify: s.notify.clone(),
                        origin: s.src.join(rel).display().to_string(),
                    });
                }
            }
            let mut packages = Vec::new();
            for p in &play.packages {
                packages.push(self.render_string(host, &ctx, p, at)?);
            }
            let mut services = Vec::new();
            for s in &play.services {
                services.push(ServiceSpec {
                    name: self.render_string(host, &ctx, &s.name, at)?,
                    ..s.clone()
                });
            }
            let mut handlers = Vec::new();
            for h in &play.handlers {
                let mut h = h.clone();
                if let Some((svc, action)) = &h.service {
                    h.service = Some((self.render_string(host, &ctx, svc, at)?, *action));
                }
                handlers.push(h);
            }
            plays.push(DesiredPlay {
                index: play.index,
                name: play.name.clone(),
                packages,
                entries,
                services,
                handlers,
                database: play.database,
                serial: play.serial,
                after: play.after.clone(),
            });
        }
        check_duplicate_paths(host, &plays, &self.playbook.path)?;
        let state = DesiredState {
            host: host.clone(),
            plays,
        };
        check_rendered(&state, self.playbook)?;
        Ok(state)
    }
}
