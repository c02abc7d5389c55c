use foobar::cli;
use foobar::warn;

fn main() {
    // A panic's message goes through the Redactor too.
    std::panic::set_hook(Box::new(|info| warn!("foobar: internal error: {info}\n")));
    let (cli, json) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(code) => std::process::exit(code),
    };
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
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(category) => category.code(),
        Err(e) => {
            cli::print_error(&e, json);
            1
        }
    };
    // Output that could not be written (a full disk) is a failure whatever the command did.
    let code = match foobar::secret::stdout_failed() {
        Some(why) => {
            warn!(
                "error: cannot write to stdout: {why}\nhint: the output is incomplete; check where stdout goes (disk space, the file)\n"
            );
            if code == 0 || code == 2 { 1 } else { code }
        }
        None => code,
    };
    // Dropping the runtime would wait for the signal watcher; exit directly instead.
    std::process::exit(code);
}
