//! Report: the only code that prints. Tasks send [`Event`]s; a [`Reporter`] shows progress on
//! stderr (a spinner per host on a terminal, plain lines otherwise). Plans and results are
//! printed by [`human`] (stdout, readable without colour, `NO_COLOR` honoured; errors on
//! stderr with a code frame) or by [`json`] (serde document types, each with
//! `format_version` and a `summary`; schema in docs/json.md). `cli` only chooses which.

pub mod human;
pub mod json;

use std::io::IsTerminal;
use std::sync::Mutex;

pub use crate::event::{Event, Reporter, Silent};
use crate::host::HostName;

/// Progress on stderr: indicatif spinners on a terminal, quiet otherwise (the final report says
/// everything; per-step lines on a pipe would only be noise).
pub struct Progress {
    bars: Option<(
        indicatif::MultiProgress,
        Mutex<std::collections::BTreeMap<HostName, indicatif::ProgressBar>>,
    )>,
    /// `n/N hosts` and the elapsed time, above the hosts' spinners (terminal only).
    total: Option<indicatif::ProgressBar>,
    /// Hosts that reached a result (planned or failed), counted once each.
    done: Mutex<std::collections::BTreeSet<HostName>>,
    verbose: bool,
    /// `-q`: print nothing.
    quiet: bool,
}

impl Progress {
    /// Nothing at all on stderr (`-q`): the final report says everything.
    pub fn quiet() -> Self {
        Self {
            bars: None,
            total: None,
            done: Mutex::new(Default::default()),
            verbose: false,
            quiet: true,
        }
    }

    /// Spinners on a terminal; with `verbose` (-v, counted) a line per step otherwise.
    pub fn new(verbose: u8) -> Self {
        let verbose = verbose > 0;
        let bars = std::io::stderr().is_terminal().then(|| {
            (
                indicatif::MultiProgress::new(),
                Mutex::new(Default::default()),
            )
        });
        let total = bars.as_ref().map(|(multi, _)| {
            let b = multi.add(indicatif::ProgressBar::new(0));
            b.set_style(
                indicatif::ProgressStyle::with_template("{pos}/{len} hosts, {elapsed} {msg}")
                    .expect("static template"),
            );
            b
        });
        Self {
            bars,
            total,
            done: Mutex::new(Default::default()),
            verbose,
            quiet: false,
        }
    }

    /// One more host reached a result.
    fn host_done(&self, host: &HostName) {
        let new = self
            .done
            .lock()
            .expect("progress lock")
            .insert(host.clone());
        if let (true, Some(t)) = (new, &self.total) {
            t.inc(1);
        }
    }

    fn bar(&self, host: &HostName) -> Option<indicatif::ProgressBar> {
        let (multi, map) = self.bars.as_ref()?;
        let mut map = map.lock().expect("progress lock");
        Some(
            map.entry(host.clone())
                .or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new_spinner());
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {prefix:>10} {msg}")
                            .expect("static template"),
                    );
                    b.set_prefix(host.to_string());
                    b.enable_steady_tick(std::time::Duration::from_millis(120));
                    b
                })
                .clone(),
        )
    }
}

impl Reporter for Progress {
    fn event(&self, e: Event) {
        let (host, msg) = match &e {
            Event::Started { hosts } => {
                if let Some(t) = &self.total {
                    t.set_length(*hosts as u64);
                    t.enable_steady_tick(std::time::Duration::from_millis(500));
                }
                return;
            }
            Event::HostStarted { host, what } => (host, what.clone()),
            Event::HostGathered { host, commands } => {
                self.host_done(host);
                (host, format!("planned ({commands} remote commands)"))
            }
            Event::PlayStarted { host, play } => (host, format!("applying play `{play}`")),
            Event::StepDone { host, step } => (host, step.clone()),
            Event::HostFailed { host, message } => {
                self.host_done(host);
                (
                    host,
                    format!("FAILED: {}", message.lines().next().unwrap_or("")),
                )
            }
        };
        if self.quiet {
            return;
        }
        // The bars write to stderr themselves: redact here.
        let msg = crate::secret::redact(&msg);
        if let Some(b) = self.bar(host) {
            b.set_message(msg);
        } else if self.verbose || matches!(e, Event::HostFailed { .. }) {
            crate::warn!("{host}: {msg}\n");
        }
    }

    fn finish(&self) {
        if let Some((multi, map)) = &self.bars {
            for b in map.lock().expect("progress lock").values() {
                b.finish_and_clear();
            }
            if let Some(t) = &self.total {
                t.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}
