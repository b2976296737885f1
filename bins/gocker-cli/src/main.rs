//! `gocker`: run isolated Linux containers, rootless first.

mod cli;
mod manage;
mod netflags;
mod run;

use clap::Parser;

fn main() {
    // In exec spawn mode (GOCKER_SPAWN=exec) this binary is also ring1 and ring2.
    gocker_runtime::ring_entry();
    // Usage errors exit 125, like every other gocker error (docker's convention); help and
    // version exit 0.
    let cli = cli::Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 125 } else { 0 })
    });
    init_logging(&cli);
    let code = match cli.command {
        cli::Command::Run(args) => run::run(*args, cli.debug),
        cli::Command::Ps(args) => run::ps(args),
        cli::Command::Rm(args) => run::rm(args),
        cli::Command::Stats(args) => run::stats(args),
        cli::Command::Logs(args) => manage::logs(args),
        cli::Command::Stop(args) => manage::stop(args),
        cli::Command::Kill(args) => manage::kill(args),
        cli::Command::Wait(args) => manage::wait(args),
        cli::Command::Inspect(args) => manage::inspect(args),
        cli::Command::Exec(args) => manage::exec(args),
        cli::Command::System(cli::SystemCommand::Prune) => netflags::system_prune(),
    };
    std::process::exit(code)
}

fn init_logging(cli: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    let level = if cli.debug { "debug" } else { cli.log_level.as_str() };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    // No threads are started here: ring0 must stay single-threaded to fork ring1.
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
