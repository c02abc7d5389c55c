//! Events: what a running stage tells the user while it works. Tasks send [`Event`]s to one
//! [`Reporter`] and never print; `report` holds the reporters that show them. Its own module so
//! that `apply` (which sends events) and `report` (which prints `apply`'s results) do not
//! import each other.

use crate::host::HostName;

#[derive(Debug, Clone)]
pub enum Event {
    /// A run over this many hosts begins (connecting, then planning).
    Started {
        hosts: usize,
    },
    /// What a host is waiting for now, e.g. "connecting to 127.0.1.2 (timeout 10 s)".
    HostStarted {
        host: HostName,
        what: String,
    },
    HostGathered {
        host: HostName,
        commands: u64,
    },
    PlayStarted {
        host: HostName,
        play: String,
    },
    StepDone {
        host: HostName,
        step: String,
    },
    HostFailed {
        host: HostName,
        message: String,
    },
}

pub trait Reporter: Send + Sync {
    fn event(&self, e: Event);
    fn finish(&self) {}
}

/// Swallows events: for tests and JSON runs that want silence.
pub struct Silent;
impl Reporter for Silent {
    fn event(&self, _: Event) {}
}
