//! `keel`: see `keel --help`. Everything lives in the library; this only builds the runtime
//! the settings ask for and reports errors.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    let cli = keel::cli::Cli::parse();
    let settings = keel::settings::Settings::load().and_then(|s| {
        if cli.command.uses_secrets() {
            s.check_dev_secrets(&s.listeners())?;
        }
        Ok(s)
    });
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("keel: {e}");
            std::process::exit(2);
        }
    };
    keel::telemetry::init(settings.log_format == "json");
    let runtime = match keel::runtime::build(settings.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keel: cannot start the Tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(keel::cli::run(cli, settings)) {
        eprintln!("keel: {e}");
        let usage = e.downcast_ref::<keel::cli::Usage>().is_some();
        std::process::exit(if usage { 2 } else { 1 });
    }
}
