//! Report: the only code that prints. Tasks send [`Event`]s; a [`Reporter`] shows progress on
//! stderr (a spinner per host on a terminal, plain lines otherwise). Plans and results are
//! printed by [`human`] (stdout, readable without colour, `NO_COLOR` honoured) or as JSON.

pub mod human;
pub mod json;

use std::io::IsTerminal;
use std::sync::Mutex;

use crate::inventory::HostName;

#[derive(Debug, Clone)]
pub enum Event {
    HostStarted { host: HostName, what: &'static str },
    HostGathered { host: HostName, commands: u64 },
    PlayStarted { host: HostName, play: String },
    StepDone { host: HostName, step: String },
    HostFailed { host: HostName, message: String },
}

pub trait Reporter: Send + Sync {
    fn event(&self, e: Event);
    fn finish(&self) {}
}

/// Progress on stderr: indicatif spinners on a terminal, quiet otherwise (the final report says
/// everything; per-step lines on a pipe would only be noise).
pub struct Progress {
    bars: Option<(
        indicatif::MultiProgress,
        Mutex<std::collections::BTreeMap<HostName, indicatif::ProgressBar>>,
    )>,
    verbose: bool,
}

impl Progress {
    pub fn new(verbose: bool) -> Self {
        let bars = std::io::stderr().is_terminal().then(|| {
            (
                indicatif::MultiProgress::new(),
                Mutex::new(Default::default()),
            )
        });
        Self { bars, verbose }
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
            Event::HostStarted { host, what } => (host, what.to_string()),
            Event::HostGathered { host, commands } => {
                (host, format!("read ({commands} remote commands)"))
            }
            Event::PlayStarted { host, play } => (host, format!("applying play `{play}`")),
            Event::StepDone { host, step } => (host, step.clone()),
            Event::HostFailed { host, message } => (
                host,
                format!("FAILED: {}", message.lines().next().unwrap_or("")),
            ),
        };
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
            let _ = multi.clear();
        }
    }
}

/// Swallows events: for tests and JSON runs that want silence.
pub struct Silent;
impl Reporter for Silent {
    fn event(&self, _: Event) {}
}
