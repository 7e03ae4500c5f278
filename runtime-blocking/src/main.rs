//! The `wharf` binary: see [`wharf_blocking::cli`].

use clap::Parser;

fn main() {
    // rustls warns about peers it tolerates (an IP address sent as SNI by lftp, ...): not
    // actionable for an administrator, so only its errors show unless RUST_LOG asks.
    let filter = env_logger::Env::default().default_filter_or("info,rustls=error");
    env_logger::Builder::from_env(filter).init();
    let cli = wharf_blocking::cli::Cli::parse();
    std::process::exit(wharf_blocking::cli::main(cli));
}
