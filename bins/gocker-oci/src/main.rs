//! `gocker-oci`: runc's command line over the Gocker runtime (`gocker_runtime::oci`).
//!
//! Global options are parsed by hand before the subcommand, like runc's (urfave/cli) parser sees
//! them: `--root DIR`, `--log FILE`, `--log-format text|json`, `--debug`, `--systemd-cgroup`
//! (refused: no systemd driver), and flags other callers pass that do not change anything here
//! (`--rootless VALUE`, `--criu PATH`, unknown `--flag[=value]`), which are accepted and noted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gocker_runtime::nsexec::ExecRequest;
use gocker_runtime::oci::{self, CreateOptions, Runtime};
use gocker_runtime::{bundle, RuntimeError};

#[derive(Default, Debug)]
struct Global {
    root: Option<PathBuf>,
    log: Option<PathBuf>,
    json_log: bool,
    debug: bool,
    systemd_cgroup: bool,
    ignored: Vec<String>,
}

/// Splits the global options off `args` (without argv[0]); returns them and the rest.
fn parse_global(args: Vec<String>) -> Result<(Global, Vec<String>), String> {
    let mut g = Global::default();
    let mut it = args.into_iter().peekable();
    let mut rest = Vec::new();
    while let Some(a) = it.next() {
        if !a.starts_with('-') || a == "-" {
            rest.push(a);
            rest.extend(it);
            break;
        }
        let trimmed = a.trim_start_matches('-').to_owned();
        let (name, inline) = match trimmed.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (trimmed, None),
        };
        let value =
            |it: &mut std::iter::Peekable<std::vec::IntoIter<String>>| -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("global option --{name} needs a value"))
            };
        match name.as_str() {
            "root" => g.root = Some(PathBuf::from(value(&mut it)?)),
            "log" => g.log = Some(PathBuf::from(value(&mut it)?)),
            "log-format" => match value(&mut it)?.as_str() {
                "json" => g.json_log = true,
                "text" => g.json_log = false,
                other => return Err(format!("--log-format {other:?}: expected text or json")),
            },
            "debug" => g.debug = inline.as_deref() != Some("false"),
            "systemd-cgroup" => g.systemd_cgroup = inline.as_deref() != Some("false"),
            "rootless" | "criu" => g.ignored.push(format!("--{name}={}", value(&mut it)?)),
            "h" | "help" | "v" | "version" => rest.push(a),
            _ => g.ignored.push(a),
        }
    }
    Ok((g, rest))
}

#[derive(Parser)]
#[command(
    name = "gocker-oci",
    version,
    about = "A runc-compatible OCI runtime built on Gocker's rings"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print the OCI state JSON of a container.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's process.
    Kill {
        id: String,
        signal: Option<String>,
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container (its process must be stopped, or use --force).
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// create + start + wait + delete (or create + start with --detach).
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        keep: bool,
    },
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// The container's processes.
    Ps {
        id: String,
        #[arg(short, long, default_value = "table")]
        format: String,
        /// ps(1) options (accepted for compatibility; ignored).
        #[arg(trailing_var_arg = true)]
        ps_args: Vec<String>,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze the container's processes (cgroup v2 freezer).
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change resource limits of a container.
    Update(UpdateArgs),
    /// The OCI runtime features JSON.
    Features,
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
}

#[derive(clap::Args)]
struct CreateArgs {
    id: String,
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Accepted: gocker always pivots inside a mount namespace of its own.
    #[arg(long)]
    no_pivot: bool,
    /// Accepted: gocker creates no session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
}

#[derive(clap::Args)]
struct ExecArgs {
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<String>,
    #[arg(short, long)]
    env: Vec<String>,
    #[arg(short, long)]
    user: Option<String>,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(clap::Args)]
struct UpdateArgs {
    id: String,
    /// LinuxResources JSON from a file, or `-` for stdin.
    #[arg(short, long)]
    resources: Option<String>,
    #[arg(long)]
    memory: Option<String>,
    #[arg(long)]
    memory_swap: Option<String>,
    #[arg(long)]
    pids_limit: Option<i64>,
    #[arg(long)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long)]
    cpu_shares: Option<u64>,
}

/// The error of one command, written to stderr and to `--log`.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn signal_number(s: &str) -> Result<i32, Failure> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let table = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("CHLD", libc::SIGCHLD),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("WINCH", libc::SIGWINCH),
        ("PWR", libc::SIGPWR),
        ("SYS", libc::SIGSYS),
        ("URG", libc::SIGURG),
        ("IO", libc::SIGIO),
    ];
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| Failure(format!("unknown signal {s:?}")))
}

/// docker-style sizes: 64m, 1g, 512k, or bytes; -1 is unlimited.
fn bytes(s: &str) -> Result<i64, Failure> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<i64>()
        .map(|n| n * mult)
        .map_err(|_| Failure(format!("invalid size {s:?}")))
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (g, rest) = match parse_global(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("gocker-oci: {e}");
            return ExitCode::from(1);
        }
    };
    let filter = if g.debug { "debug" } else { "warn" };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
    for f in &g.ignored {
        tracing::debug!("ignoring global option {f}");
    }
    let cli = match Cli::try_parse_from(std::iter::once("gocker-oci".to_owned()).chain(rest)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match run(&g, cli.cmd) {
        Ok(code) => ExitCode::from(code),
        Err(Failure(msg)) => {
            eprintln!("gocker-oci: {msg}");
            log_error(&g, &msg);
            ExitCode::from(1)
        }
    }
}

/// Appends the error to `--log` (containerd and conmon read the last error from there).
fn log_error(g: &Global, msg: &str) {
    let Some(path) = &g.log else { return };
    let line = if g.json_log {
        serde_json::json!({"level": "error", "msg": msg, "time": oci::now_rfc3339()}).to_string()
    } else {
        format!("time=\"{}\" level=error msg={msg:?}", oci::now_rfc3339())
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn run(g: &Global, cmd: Cmd) -> Result<u8, Failure> {
    if g.systemd_cgroup {
        return Err(Failure("--systemd-cgroup: the systemd cgroup driver is not supported; use cgroupfs (cgroup v2)".into()));
    }
    if let Cmd::Features = cmd {
        print_json(&oci::features())?;
        return Ok(0);
    }
    if let Cmd::Spec { bundle, rootless } = &cmd {
        let path = bundle.join("config.json");
        if path.exists() {
            return Err(Failure(format!("{} already exists", path.display())));
        }
        let spec = oci::default_spec(*rootless)?;
        let text = serde_json::to_vec_pretty(&spec)?;
        std::fs::write(&path, text).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
        return Ok(0);
    }
    let root = g.root.clone().unwrap_or_else(oci::default_root);
    let rt = Runtime::open(&root)?;
    match cmd {
        Cmd::Create(a) => {
            rt.create(&a.id, &a.bundle, &create_opts(&a))?;
        }
        Cmd::Start { id } => rt.start(&id)?,
        Cmd::State { id } => print_json(&rt.state(&id)?)?,
        Cmd::Kill { id, signal, all } => rt.kill(
            &id,
            signal_number(signal.as_deref().unwrap_or("TERM"))?,
            all,
        )?,
        Cmd::Delete { id, force } => rt.delete(&id, force)?,
        Cmd::Run {
            create,
            detach,
            keep,
        } => {
            if keep {
                return Err(Failure("run --keep is not supported".into()));
            }
            let code = rt.run(&create.id, &create.bundle, &create_opts(&create), detach)?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Cmd::Exec(a) => return exec(&rt, a),
        Cmd::Ps { id, format, .. } => {
            let pids = rt.ps(&id)?;
            if format == "json" {
                print_json(&pids)?;
            } else {
                println!("{:>8}  CMD", "PID");
                for p in pids {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    let cmd: Vec<String> = cmd
                        .split(|b| *b == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect();
                    println!("{p:>8}  {}", cmd.join(" "));
                }
            }
        }
        Cmd::List { format, quiet } => {
            let all = rt.list()?;
            if quiet {
                for s in &all {
                    println!("{}", s.id);
                }
            } else if format == "json" {
                print_json(&all)?;
            } else {
                println!(
                    "{:<24} {:<8} {:<8} {:<40} CREATED",
                    "ID", "PID", "STATUS", "BUNDLE"
                );
                for s in &all {
                    println!(
                        "{:<24} {:<8} {:<8} {:<40} {}",
                        s.id,
                        s.pid,
                        s.status,
                        s.bundle.display(),
                        s.created
                    );
                }
            }
        }
        Cmd::Pause { id } => rt.freeze(&id, true)?,
        Cmd::Resume { id } => rt.freeze(&id, false)?,
        Cmd::Update(a) => update(&rt, a)?,
        Cmd::Features | Cmd::Spec { .. } => unreachable!("handled above"),
    }
    Ok(0)
}

fn create_opts(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
    }
}

fn exec(rt: &Runtime, a: ExecArgs) -> Result<u8, Failure> {
    if a.pid_file.is_some() && !a.detach {
        return Err(Failure("exec --pid-file needs --detach".into()));
    }
    let mut req = ExecRequest {
        args: a.args.clone(),
        env: a.env.clone(),
        cwd: a.cwd.clone(),
        tty: a.tty,
        stdin: true,
        user: None,
        console_socket: a.console_socket.clone(),
        console_size: None,
        // runc's exec has no detach keys.
        detach_keys: None,
    };
    if let Some(path) = &a.process {
        let p: oci_spec::runtime::Process = bundle::read_json(path)?;
        req.args = p.args().clone().unwrap_or_default();
        req.env = p.env().clone().unwrap_or_default();
        req.cwd = Some(p.cwd().display().to_string());
        req.user = Some((p.user().uid(), p.user().gid()));
        req.tty = p.terminal().unwrap_or(false) || a.tty;
        req.console_size = p.console_size();
    }
    if req.console_socket.is_some() && !req.tty {
        return Err(Failure(
            "exec --console-socket needs a terminal (--tty, or process.terminal in --process)"
                .into(),
        ));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let parse = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Failure(format!("--user {u:?}: expected UID[:GID] as numbers")))
        };
        req.user = Some((parse(uid)?, parse(gid)?));
    }
    if req.args.is_empty() {
        return Err(Failure(format!(
            "exec {}: no command given (positional arguments or --process)",
            a.id
        )));
    }
    if a.detach {
        if req.tty && req.console_socket.is_none() {
            return Err(Failure(
                "exec --detach --tty needs --console-socket (where to send the terminal)".into(),
            ));
        }
        rt.exec_detached(&a.id, &req, a.pid_file.as_deref())?;
        return Ok(0);
    }
    let st = rt.exec(&a.id, &req)?;
    Ok(st.code().clamp(0, 255) as u8)
}

fn update(rt: &Runtime, a: UpdateArgs) -> Result<(), Failure> {
    let mut res: serde_json::Value = match a.resources.as_deref() {
        None => serde_json::json!({}),
        Some(f) => {
            let (name, text) = if f == "-" {
                let stdin = std::io::stdin().lock();
                let text = bundle::read_bounded_from(stdin, bundle::MAX_JSON_BYTES);
                ("standard input", text)
            } else {
                (f, bundle::read_bounded(Path::new(f)))
            };
            // Checked as LinuxResources first, so that a bad value is named by its JSON path;
            // the flags below are merged into the JSON as it was written.
            text.and_then(|t| {
                bundle::parse_json::<oci_spec::runtime::LinuxResources>(&t)?;
                bundle::parse_json(&t)
            })
            .map_err(|problem| RuntimeError::Input {
                path: name.into(),
                problem,
            })?
        }
    };
    if let Some(m) = &a.memory {
        res["memory"]["limit"] = bytes(m)?.into();
    }
    if let Some(m) = &a.memory_swap {
        res["memory"]["swap"] = bytes(m)?.into();
    }
    if let Some(p) = a.pids_limit {
        res["pids"]["limit"] = p.into();
    }
    if let Some(q) = a.cpu_quota {
        res["cpu"]["quota"] = q.into();
    }
    if let Some(p) = a.cpu_period {
        res["cpu"]["period"] = p.into();
    }
    if let Some(s) = a.cpu_shares {
        res["cpu"]["shares"] = s.into();
    }
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_value(res).map_err(|e| Failure(format!("resources: {e}")))?;
    rt.update(&a.id, &res)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn global_flags_of_conmon_and_containerd() {
        let (g, rest) = parse_global(s(&[
            "--root",
            "/r",
            "--log",
            "/l.json",
            "--log-format",
            "json",
            "--systemd-cgroup",
            "create",
            "--bundle",
            "b",
            "x",
        ]))
        .unwrap();
        assert_eq!(
            (
                g.root.unwrap(),
                g.log.unwrap(),
                g.json_log,
                g.systemd_cgroup
            ),
            (PathBuf::from("/r"), PathBuf::from("/l.json"), true, true)
        );
        assert_eq!(rest, s(&["create", "--bundle", "b", "x"]));
        let (g, rest) = parse_global(s(&[
            "--root=/r",
            "--rootless",
            "true",
            "--cgroup-manager=cgroupfs",
            "--debug",
            "state",
            "x",
        ]))
        .unwrap();
        assert_eq!(g.root.unwrap(), PathBuf::from("/r"));
        assert!(g.debug && g.ignored.len() == 2, "{:?}", g.ignored);
        assert_eq!(rest, s(&["state", "x"]));
        assert!(parse_global(s(&["--log-format", "xml", "list"])).is_err());
    }

    #[test]
    fn signals_and_sizes() {
        assert_eq!(signal_number("9").ok(), Some(9));
        assert_eq!(signal_number("SIGKILL").ok(), Some(libc::SIGKILL));
        assert_eq!(signal_number("term").ok(), Some(libc::SIGTERM));
        assert!(signal_number("NOPE").is_err());
        assert_eq!(bytes("64m").ok(), Some(64 << 20));
        assert_eq!(bytes("-1").ok(), Some(-1));
    }
}
