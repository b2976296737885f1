//! `gocker`: run isolated Linux containers, rootless first.

mod cli;
mod container_fs;
mod control;
mod create;
mod events_cmd;
mod failure;
mod format;
mod host;
mod image_cmds;
mod images;
mod info;
mod manage;
mod monitor_flags;
mod names;
mod netflags;
mod network_cmds;
mod nsenter;
mod nsflags;
mod port;
mod privflags;
mod ps;
mod ps_row;
mod rename;
mod run;
mod run_image;
mod runflags;
mod signals;
mod stats;
mod system_prune;
mod table;
mod timeflags;
mod volume_cmds;

use clap::Parser;

fn main() {
    // In exec spawn mode (GOCKER_SPAWN=exec) this binary is also ring1 and ring2.
    gocker_runtime::ring_entry();
    failure::exit_on_broken_pipe();
    // Usage errors exit 125, like every other gocker error (docker's convention); help and
    // version exit 0.
    let cli = cli::Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 125 } else { 0 })
    });
    init_logging(&cli);
    let code = match cli.command {
        cli::Command::Run(args) => run::run(*args, cli.debug),
        cli::Command::Create(args) => create::create(*args, cli.debug),
        cli::Command::Ps(args) => ps::ps(args),
        cli::Command::Rename(args) => rename::rename(args),
        cli::Command::Port(args) => port::port(args),
        cli::Command::Rm(args) => run::rm(args),
        cli::Command::Stats(args) => stats::stats(args),
        cli::Command::Logs(args) => manage::logs(args),
        cli::Command::Attach(args) => manage::attach(args),
        cli::Command::Stop(args) => manage::stop(args),
        cli::Command::Kill(args) => manage::kill(args),
        cli::Command::Wait(args) => manage::wait(args),
        cli::Command::Inspect(args) => manage::inspect(args),
        cli::Command::Events(args) => events_cmd::events(args),
        cli::Command::Exec(args) => manage::exec(args),
        cli::Command::Start(args) => manage::start(args),
        cli::Command::Restart(args) => manage::restart(args),
        cli::Command::Top(args) => manage::top(args),
        cli::Command::Nsenter(args) => nsenter::nsenter(args),
        cli::Command::Info(args) => info::info(args),
        cli::Command::Version(args) => version(args),
        cli::Command::Completion(args) => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "gocker", &mut script);
            failure::wrote(std::io::Write::write_all(&mut std::io::stdout(), &script));
            0
        }
        cli::Command::Rootfs(c) => rootfs(c),
        cli::Command::System(cli::SystemCommand::Prune(a)) => system_prune::system_prune(a),
        cli::Command::Images(c) => image_cmds::main(c, cli.debug),
        cli::Command::ContainerFs(c) => container_fs::main(c, cli.debug),
        cli::Command::Volumes(c) => volume_cmds::main(c),
        cli::Command::Networks(c) => network_cmds::main(c),
        cli::Command::Pause(args) => control::pause(args),
        cli::Command::Unpause(args) => control::unpause(args),
        cli::Command::Update(args) => control::update(args),
    };
    std::process::exit(code)
}

fn init_logging(cli: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    let level = if cli.debug {
        "debug"
    } else {
        cli.log_level.as_str()
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    // No threads are started here: ring0 must stay single-threaded to fork ring1.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn version(a: cli::VersionArgs) -> i32 {
    let uname = rustix::system::uname();
    if a.format.is_some() {
        let format = match format::Format::parse(a.format.as_deref()) {
            Ok(f) => f,
            Err(e) => return failure::report(e.into()),
        };
        // docker's names: Go's GOOS/GOARCH words.
        let arch = match uname.machine().to_string_lossy().as_ref() {
            "x86_64" => "amd64".to_owned(),
            "aarch64" => "arm64".to_owned(),
            m => m.to_owned(),
        };
        let v = serde_json::json!({
            "Client": {"Version": env!("CARGO_PKG_VERSION"), "Os": "linux", "Arch": arch},
            "Server": {
                "Version": env!("CARGO_PKG_VERSION"),
                "Os": "linux",
                "Arch": arch,
                "KernelVersion": uname.release().to_string_lossy(),
                "OCIRuntimeSpec": oci_spec::runtime::VERSION,
            },
        });
        return match format.render(&[v], &[]) {
            Ok(text) => {
                failure::wrote(std::io::Write::write_all(
                    &mut std::io::stdout(),
                    text.unwrap_or_default().as_bytes(),
                ));
                0
            }
            Err(e) => failure::report(e.into()),
        };
    }
    println!("gocker version {}", env!("CARGO_PKG_VERSION"));
    println!("OCI runtime spec {}", oci_spec::runtime::VERSION);
    println!(
        "kernel {} {}",
        uname.release().to_string_lossy(),
        uname.machine().to_string_lossy()
    );
    0
}

fn rootfs(c: cli::RootfsCommand) -> i32 {
    let r = match c {
        cli::RootfsCommand::Build {
            name,
            dest,
            offline,
            force,
        } => {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                Err(anyhow::anyhow!("rootfs name {name:?}: not a plain name"))
            } else {
                // The default rootfs (`alpine` in the store) is also the default image.
                let default = dest.is_none() && name == "alpine";
                let dest = dest.unwrap_or_else(|| images::store_dir().join(&name));
                images::ensure(Some(dest), offline, force).and_then(|p| {
                    if default {
                        images::register_default(&p)?;
                    }
                    println!("{}", p.display());
                    Ok(())
                })
            }
        }
        cli::RootfsCommand::Ls { json } => {
            let list = images::list();
            if json {
                println!("{}", serde_json::to_string_pretty(&list).expect("json"));
            } else {
                let mut t = table::Table::new(&["NAME", "SOURCE", "VERSION", "PATH"]);
                for i in list {
                    t.row(vec![
                        i.name,
                        i.source,
                        i.version,
                        i.path.display().to_string(),
                    ]);
                }
                t.print();
            }
            Ok(())
        }
        cli::RootfsCommand::Rm { names } => names
            .iter()
            .try_for_each(|n| images::remove(n).map(|_| println!("{n}"))),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gocker: rootfs: {e:#}");
            125
        }
    }
}
