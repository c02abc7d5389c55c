use clap::Parser;
use foobar::cli::{Cli, run};

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(category) => category.code(),
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(l) = e.location() {
                eprintln!("  --> {l}");
            }
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            1
        }
    };
    // Dropping the runtime would wait for the signal watcher; exit directly instead.
    std::process::exit(code);
}
