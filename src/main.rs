//! `keel`: see `keel --help`. Everything lives in the library; this only reports errors.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = keel::cli::Cli::parse();
    let settings = match keel::settings::Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("keel: {e}");
            std::process::exit(2);
        }
    };
    keel::telemetry::init(settings.log_format == "json");
    if let Err(e) = keel::cli::run(cli, settings).await {
        eprintln!("keel: {e}");
        std::process::exit(1);
    }
}
