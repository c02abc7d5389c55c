//! foobar's log on stderr through `tracing`: warnings by default, `-v` info, `-vv` debug,
//! `-q` errors only. `FOOBAR_TRACE=1` (or `-vv`) turns on the `foobar::trace` target: one
//! profile line per remote command, printed bare (`trace HOST start=… took=…`) so scripts
//! can parse it.

use tracing::Level;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

use crate::transport::TRACE_TARGET;

pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, _) => LevelFilter::DEBUG,
    };
    let profile = std::env::var_os("FOOBAR_TRACE").is_some_and(|v| v != "0") || verbose >= 2;
    let ansi = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let trace_lines = tracing_subscriber::fmt::layer()
        .with_writer(|| crate::secret::RedactedStderr)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_ansi(false)
        .with_filter(filter_fn(move |m| {
            profile && m.target() == TRACE_TARGET && *m.level() <= Level::DEBUG
        }));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(|| crate::secret::RedactedStderr)
        .without_time()
        .with_target(false)
        .with_ansi(ansi)
        .with_filter(filter_fn(move |m| {
            m.target() != TRACE_TARGET && m.target().starts_with("foobar")
        }))
        .with_filter(level);
    let _ = tracing_subscriber::registry()
        .with(trace_lines)
        .with(log)
        .try_init();
}
