use clap::Parser;
use foobar::cli::{Cli, run};
use foobar::warn;

fn main() {
    // A panic's message goes through the Redactor too.
    std::panic::set_hook(Box::new(|info| warn!("foobar: internal error: {info}\n")));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            warn!("error: cannot start the async runtime: {e}\n");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(category) => category.code(),
        Err(e) => {
            // One write through the run's Redactor (`warn!`): an error may quote a secret
            // (e.g. a template including a secret's value by name).
            let mut text = format!("error: {e}\n");
            if let Some(l) = e.location() {
                text.push_str(&format!("  --> {l}\n"));
            }
            if let Some(h) = e.hint() {
                text.push_str(&format!("hint: {h}\n"));
            }
            warn!("{text}");
            1
        }
    };
    // Dropping the runtime would wait for the signal watcher; exit directly instead.
    std::process::exit(code);
}
