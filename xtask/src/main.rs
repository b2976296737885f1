//! Project tasks: `cargo xtask rootfs | itest | vmtest | conformance | bench | dist`.

mod bench;
mod conformance;
mod dist;
mod imagebench;
mod itest;
mod netbench;
mod rootfs;
mod util;
mod vmtest;
mod wsbench;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Gocker project tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the Alpine rootfs used by the tests and print its path (idempotent).
    Rootfs(rootfs::Args),
    /// Build everything and run the unit and integration tests, as root and as unprivileged users.
    #[command(long_about = itest::long_about())]
    Itest(itest::Args),
    /// Boot a pure cgroup v2 kernel under QEMU and run the cgroup tests and limit scenarios there.
    Vmtest(vmtest::Args),
    /// The OCI runtime-tools validation suite against runc and gocker-oci (root; builds the suite).
    Conformance(conformance::Args),
    /// Start latency against runc and bubblewrap, network throughput and per-mode latency; writes docs/benchmarks.md.
    Bench(bench::Args),
    /// Build gocker and gocker-oci as shipped (static PIEs, libseccomp included) and print their paths.
    Dist(dist::Args),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Rootfs(a) => rootfs::main(a),
        Cmd::Itest(a) => itest::main(a),
        Cmd::Bench(a) => bench::main(a),
        Cmd::Vmtest(a) => vmtest::main(a),
        Cmd::Conformance(a) => conformance::main(a),
        Cmd::Dist(a) => dist::main(a),
    };
    if let Err(e) = r {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
