//! The `wharf` binary: see [`wharf_blocking::cli`].

use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = wharf_blocking::cli::Cli::parse();
    std::process::exit(wharf_blocking::cli::main(cli));
}
