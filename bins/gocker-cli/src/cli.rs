use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run isolated Linux containers, rootless first.
///
/// Every container gets new user, mount, PID, UTS, IPC, network and cgroup namespaces, a
/// pivot_root into its rootfs, docker's default capabilities and no_new_privs. Exit codes follow
/// docker: 125 for a gocker error, 126 command not executable, 127 command not found, the
/// command's own status otherwise, 128+N when it was killed by signal N.
#[derive(Debug, Parser)]
#[command(name = "gocker", version, propagate_version = true)]
pub struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, global = true, default_value = "warn", env = "GOCKER_LOG_LEVEL")]
    pub log_level: String,
    /// Debug output: the spec and rootfs decisions, and errors with their full chain.
    #[arg(long, short = 'D', global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new container.
    Run(Box<RunArgs>),
    /// Create a container without starting it (status `created`): the flags of `run` but -d;
    /// `gocker start` runs it detached, `gocker rm` removes it. Prints its id.
    Create(Box<RunArgs>),
    /// List containers.
    Ps(PsArgs),
    /// Rename a container (running or stopped).
    Rename(RenameArgs),
    /// List a container's published ports (`run -p`), or the host addresses of one of them.
    Port(PortArgs),
    /// Remove stopped containers.
    Rm(RmArgs),
    /// Live resource usage of containers: docker's columns, measured where they can be.
    ///
    /// Where each value comes from: the container's cgroup v2 files when its cgroup has them,
    /// else its processes (those in its PID namespace) in /proc. On a host whose cgroup v2 has
    /// no controllers (hybrid), containers have no cgroup and the /proc values are shown.
    ///
    /// CPU %: CPU time over the sampling interval, 100% per CPU (cpu.stat usage_usec; else
    /// utime+stime+cutime+cstime of /proc/PID/stat, so the time of processes that exited
    /// without being reaped inside the container is missed).
    ///
    /// MEM USAGE: memory.current; else the sum of the processes' VmRSS (/proc/PID/status;
    /// shared pages count in each process). LIMIT: memory.max; else, without a limit, the
    /// host's MemTotal (/proc/meminfo), as docker. MEM %: USAGE / LIMIT.
    ///
    /// NET I/O: received / sent bytes of the container's interfaces but lo (/proc/PID/net/dev
    /// of its network namespace); `--` with --network host (the host's traffic).
    ///
    /// BLOCK I/O: read / written bytes (io.stat rbytes/wbytes; else read_bytes/write_bytes of
    /// /proc/PID/io of the live processes; `--` when one of them cannot be read, as rootless a
    /// process running as another of your subordinate ids).
    ///
    /// PIDS: pids.current; else the threads of the processes (/proc/PID/status Threads).
    ///
    /// A value nothing measures is shown as `--`; a stopped container's row has only `--`.
    Stats(StatsArgs),
    /// Show a container's output (detached containers).
    Logs(LogsArgs),
    /// Connect to the terminal of a running container (started with -t): its output, your input
    /// and window size; the detach keys (Ctrl-P Ctrl-Q) leave it running.
    Attach(AttachArgs),
    /// Stop containers: their stop signal (run --stop-signal, else the image's StopSignal, else
    /// SIGTERM), then SIGKILL after the grace period.
    Stop(StopArgs),
    /// Send a signal to containers' main process.
    Kill(KillArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(NamesArgs),
    /// Show a container's record and OCI spec as JSON.
    Inspect(InspectArgs),
    /// Real-time events, as docker's: containers (create, start, die, kill, stop, destroy,
    /// rename, exec_create, exec_start), images (pull, tag, untag, delete) and volumes (create,
    /// destroy), from the journal in the state store (the last 1-2 MiB are kept).
    ///
    /// Without --since, only what happens from now on; without --until, it keeps following
    /// until interrupted. Default line: `TIME TYPE ACTION ID (ATTRIBUTES)`.
    Events(EventsArgs),
    /// Run a command in a running container (its namespaces, cgroup and privileges).
    Exec(ExecArgs),
    /// Start stopped containers again (detached, same configuration, logs appended).
    Start(NamesArgs),
    /// Stop (the stop signal, as for `stop`, then SIGKILL after the grace period) and start
    /// containers again.
    Restart(StopArgs),
    /// Show the processes running in a container.
    Top(TopArgs),
    /// Pause every process of containers (the cgroup v2 freezer: they stop being scheduled,
    /// keep their memory, and `ps` shows them `paused`). Needs the container's cgroup: on a host
    /// whose cgroup v2 has no controllers (hybrid), or rootless without a delegated subtree,
    /// containers have none and pause is refused, saying why (docs/cgroups.md).
    Pause(NamesArgs),
    /// Resume the processes of paused containers.
    Unpause(NamesArgs),
    /// Change the resource limits of containers, as docker's `update`: each limit given
    /// replaces the container's own (the others stay), is written into a running container's
    /// cgroup at once and recorded for its next start; a stopped container's update is only
    /// recorded. A running container without a cgroup is refused and nothing changes.
    /// `--restart` replaces the restart policy: the container's monitor applies it at the
    /// payload's next exit (a `--rm` container's is refused). Prints the names of the containers
    /// updated.
    Update(UpdateArgs),

    /// Run a program in namespaces of a container or process (all of them unless flags choose).
    Nsenter(NsenterArgs),
    /// Check what this host supports (user namespaces, id ranges, cgroup v2, seccomp, networking)
    /// and say what to change.
    Info(InfoArgs),
    /// Versions of gocker, the OCI runtime spec it implements, and the kernel.
    Version(VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(CompletionArgs),
    /// Build, list and remove the root filesystems gocker knows.
    #[command(subcommand)]
    Rootfs(RootfsCommand),
    /// System-wide maintenance.
    #[command(subcommand)]
    System(SystemCommand),
    /// Images: pull, images, rmi, tag, history, save, load, image ... (image_cmds.rs).
    #[command(flatten)]
    Images(crate::image_cmds::ImageCommands),
    /// A container's files: commit, cp, export, import (container_fs.rs).
    #[command(flatten)]
    ContainerFs(crate::container_fs::FsCommands),
    /// Named volumes: volume create, ls, inspect, rm, prune (volume_cmds.rs).
    #[command(flatten)]
    Volumes(crate::volume_cmds::VolumeCommands),
    /// User-defined networks: network create, ls, inspect, rm, prune (network_cmds.rs).
    #[command(flatten)]
    Networks(crate::network_cmds::NetworkCommands),
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct NsenterArgs {
    /// The target: a container (name or id: its payload) or a host PID (e.g. ring1's, printed by
    /// a workspace's debug sleep).
    #[arg(short, long, value_name = "PID|CONTAINER")]
    pub target: String,
    /// Join the mount namespace.
    #[arg(short, long)]
    pub mount: bool,
    /// Join the network namespace.
    #[arg(short, long)]
    pub net: bool,
    /// Join the PID namespace (the command runs as a child inside it).
    #[arg(short, long)]
    pub pid: bool,
    /// Join the UTS namespace.
    #[arg(short, long)]
    pub uts: bool,
    /// Join the IPC namespace.
    #[arg(short, long)]
    pub ipc: bool,
    /// Join the user namespace (implied when you are not root, since the others need it).
    #[arg(short = 'U', long)]
    pub user: bool,
    /// Join the cgroup namespace.
    #[arg(short = 'C', long)]
    pub cgroup: bool,
    /// Keep your uid/gid in the joined user namespace instead of becoming its root.
    #[arg(long)]
    pub preserve_credentials: bool,
    #[arg(required = true, value_name = "COMMAND [ARG...]")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// A container port, PORT[/tcp|/udp] (tcp when no protocol is given).
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
    /// A Go template over the JSON of --json (`{{.Rootless}}`, `{{.StateDir}}`,
    /// `{{range .Checks}}{{.name}} {{end}}`, `{{json .}}`); `json`: that JSON on one line.
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// A Go template over the versions (`{{.Client.Version}}`, `{{.Server.Os}}`,
    /// `{{.Server.KernelVersion}}`, `{{json .}}`); `json`: them as one JSON line.
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Build a rootfs: the official Alpine minirootfs (pinned, checksum verified), or offline an
    /// Alpine-like one from Debian's busybox-static and musl. Prints its path.
    Build {
        /// Name in the rootfs store; `alpine` is what `gocker run` uses by default.
        #[arg(default_value = "alpine")]
        name: String,
        /// Build somewhere else than the store.
        #[arg(long, value_name = "DIR")]
        dest: Option<PathBuf>,
        /// Skip the download (also GOCKER_ROOTFS_OFFLINE=1).
        #[arg(long)]
        offline: bool,
        /// Rebuild even when it exists.
        #[arg(long)]
        force: bool,
    },
    /// List the rootfs images in the store.
    #[command(alias = "list")]
    Ls {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove rootfs images from the store.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Remove stopped containers and what dead containers left behind (network leases, nft
    /// rules, veths, helper processes; the bridge when no container uses it).
    ///
    /// As docker: without -f, the list of what goes and `Are you sure you want to continue?
    /// [y/N]` (a line of stdin; anything but y or Y removes nothing and exits 0). Prints the ids
    /// of the containers removed and `Total reclaimed space:` (the bytes of their state and
    /// copy-on-write changes that could be read).
    Prune(SystemPruneArgs),
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Only the containers that match (repeatable, all must match): `until=DURATION|TIMESTAMP`
    /// (created before then: 24h, 1h30m, Unix seconds, or RFC 3339 as 2026-12-01T10:00:00Z or
    /// 2026-12-01, UTC when no zone is given), `label=KEY[=VALUE]`, `label!=KEY[=VALUE]` (the
    /// labels recorded by `run --label` and the image). The network state of dead containers
    /// has neither labels nor a creation time: it is removed by an unfiltered prune only.
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Detached: start the command and return at once (exit 0) while it keeps running in the
    /// container, its stdin, stdout and stderr on /dev/null.
    #[arg(short, long)]
    pub detach: bool,
    /// Read environment variables from a file, as `run --env-file` reads it (KEY=VALUE lines,
    /// `#` comments, a bare KEY copied from gocker's environment); -e wins over the file.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Pass stdin to the command (otherwise it reads /dev/null).
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a pseudo-terminal of the container (with -i: your terminal in raw mode,
    /// window size changes follow, and the detach keys leave the command running).
    #[arg(short, long)]
    pub tty: bool,
    /// The key sequence that detaches from the command's terminal (-it), leaving it running with
    /// its output discarded: as for `run`; "" turns detaching off.
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Set an environment variable (KEY=VALUE).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run as USER[:GROUP]: numeric ids, or names from the running container's /etc/passwd and
    /// /etc/group (a name's group defaults to its primary group; an unknown name exits 126).
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(required = true, value_name = "COMMAND [ARG...]")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Prefix each line with its timestamp.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only the lines logged at or after this time: a timestamp (RFC 3339, e.g.
    /// 2026-12-01T10:00:00Z or 2026-12-01, UTC without a zone; or Unix seconds) or a duration
    /// before now (10m, 1h30m).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only the lines logged at or before this time (the forms of --since); with -f, stop
    /// following then.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL (default: the container's `run
    /// --stop-timeout`, else 10).
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    pub time: Option<u64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal name or number (KILL, TERM, HUP, 9, ...).
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The key sequence that detaches (default ctrl-p,ctrl-q; "" turns detaching off).
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Only show the output: do not pass your input to the container.
    #[arg(long)]
    pub no_stdin: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Also the recorded events from this time on: a timestamp (RFC 3339, e.g.
    /// 2026-12-01T10:00:00Z or 2026-12-01, UTC without a zone; or Unix seconds) or a duration
    /// before now (10m, 1h30m).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stop at this time (the forms of --since): a past time prints the recorded events and
    /// exits; a future one follows until then.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only matching events (repeatable; values of one key OR, different keys AND):
    /// `type=container|image|volume`, `event=ACTION` (start, die, exec_start, ...),
    /// `container=NAME|ID-PREFIX`, `image=NAME`, `volume=NAME`.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// A Go template as docker's over each event's JSON message (Type, Action, Actor.ID,
    /// Actor.Attributes, time, timeNano, status, id, from): `{{.Type}} {{.Action}}`,
    /// `{{json .}}`; `json`: one JSON line each.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template as docker's, evaluated over each container's JSON (one line each):
    /// `{{.State.Pid}}`, `{{.State.Status}}`, `{{.Name}}`, `{{index .Config.Labels "KEY"}}`,
    /// `{{json .State}}`; `json`: each container's JSON on one line.
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// A Go template as docker's, for each container: fields Container, ID, Name, CPUPerc,
    /// MemUsage, MemPerc, NetIO, BlockIO, PIDs (`{{.Name}}\t{{.CPUPerc}}`); `table ` first:
    /// with a header row; `json`: each row as a JSON line.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Containers by name or id (default: all running containers).
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    trailing_var_arg = true,
    override_usage = "gocker run [OPTIONS] <COMMAND [ARG...]>...\n       gocker run [OPTIONS] <IMAGE> [COMMAND [ARG...]]\n       gocker run [OPTIONS] --entrypoint <PROGRAM> [ARG...]"
)]
pub struct RunArgs {
    /// Root filesystem directory (every word is then the command). Default: an IMAGE, or the
    /// default image gocker-alpine:latest (the provisioned Alpine rootfs, `gocker rootfs
    /// build`), else a read-only view of the host's / with a private writable /tmp.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Remove the container's record when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Keep stdin open and pass it to the command (otherwise it reads /dev/null).
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a pseudo-terminal (with -i: an interactive terminal; your terminal is put
    /// in raw mode, Ctrl-C and Ctrl-D go to the container, window size changes follow, and the
    /// detach keys leave it running in the background).
    #[arg(short, long)]
    pub tty: bool,
    /// Run in the background under a monitor that keeps its logs; print the container id. With
    /// -it, `gocker attach` connects to its terminal later.
    #[arg(short, long)]
    pub detach: bool,
    /// The key sequence that detaches from an interactive terminal (-it), leaving the container
    /// running: comma-separated keys, each a character or ctrl-<a-z, @, [, \, ], ^, _>; "" turns
    /// detaching off.
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Container name (unique; default: the short id).
    #[arg(long)]
    pub name: Option<String>,
    /// Hostname inside the container (default: the short id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from gocker's environment).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file: KEY=VALUE lines (`#` comments and blank lines are
    /// skipped; a bare KEY copies it from gocker's environment). -e wins over the file.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Run this program, with COMMAND [ARG...] as its arguments.
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// Working directory inside the container (absolute; created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run as USER[:GROUP] inside the container: numeric ids, or names from the container's
    /// /etc/passwd and /etc/group (a name's group defaults to its primary group).
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Bind mount a host path: SRC:DST[:ro|rw] (SRC absolute and existing; DST is resolved inside
    /// the rootfs, so a symlink there cannot lead the mount outside it). Or a named volume:
    /// NAME:DST[:ro|rw|nocopy] (NAME not starting with / or .; created when missing; an empty
    /// volume first gets a copy of what the root has at DST, unless nocopy: `gocker volume`).
    #[arg(short = 'v', long = "volume", value_name = "SRC|NAME:DST[:ro]")]
    pub volumes: Vec<String>,
    /// Mount a fresh tmpfs: DST[:OPTIONS] (e.g. /run:size=64m,mode=755).
    #[arg(long, value_name = "DST[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// docker's long form of -v and --tmpfs: type=bind|volume|tmpfs,source=SRC,target=DST
    /// [,readonly][,volume-nocopy][,tmpfs-size=SIZE][,tmpfs-mode=OCTAL] (repeatable). A bind
    /// source must exist; a volume needs a name (no anonymous volumes).
    #[arg(long = "mount", value_name = "type=...,source=...,target=...")]
    pub mounts: Vec<String>,
    /// Expose a port or a range without publishing it: PORT[-END][/tcp|udp|sctp] (repeatable;
    /// recorded beside the image's ExposedPorts, shown by `inspect` under Config.ExposedPorts).
    #[arg(long, value_name = "PORT[/PROTO]")]
    pub expose: Vec<String>,
    /// Publish every exposed port (the image's ExposedPorts and --expose) on a host port the
    /// kernel picks, as -p PORT does (`gocker port NAME` shows which).
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Network: `none` (only loopback), `host` (the host's), `bridge` (veth on gocker0 with NAT;
    /// the default for root), `slirp4netns` or `pasta` (user-mode; the default for other users is
    /// whichever is installed, pasta first), `container:NAME` (the network namespace of your
    /// running container NAME: its interfaces, ports, hostname and /etc/hosts), or the name of a
    /// user-defined network (`gocker network create`, root only), where containers find each
    /// other by name.
    #[arg(long, value_name = "MODE|NETWORK", env = "GOCKER_NETWORK")]
    pub network: Option<String>,
    /// Another name by which the containers of the same user-defined network find this one
    /// (its embedded resolver answers it; repeatable).
    #[arg(long = "network-alias", alias = "net-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// PID namespace: `host` (see and signal the processes of the namespace gocker runs in; /proc
    /// is the host's) or `container:NAME` (your running container NAME's: its processes are
    /// visible, and this container is killed when NAME's first process exits). Default: its own.
    #[arg(long, value_name = "host|container:NAME")]
    pub pid: Option<String>,
    /// IPC namespace (System V IPC, POSIX message queues): `private` or `shareable` (its own, the
    /// default), `none` (its own, without /dev/shm), `host`, or `container:NAME` (your running
    /// container NAME's, with its /dev/shm).
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// UTS namespace (hostname, domain name): `host` or `container:NAME`; --hostname is refused
    /// with either. Default: its own.
    #[arg(long, value_name = "host|container:NAME")]
    pub uts: Option<String>,
    /// User namespace ids: `host` (root only: container ids are host ids, an identity map; the
    /// container still has a user namespace of its own) or `keep-id` (unprivileged users with an
    /// /etc/subuid range: your uid and gid keep their numbers inside and the command runs as
    /// them unless -u says otherwise). A container that shares another's namespaces
    /// (container:NAME) shares its user namespace. Default: a range of its own as root, your uid
    /// as root and your /etc/subuid range otherwise.
    #[arg(long, value_name = "host|keep-id")]
    pub userns: Option<String>,
    /// Publish a container port: [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp].
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[IP:]HOST:CONTAINER[/PROTO]"
    )]
    pub publish: Vec<String>,
    /// DNS server for the container's resolv.conf (repeatable).
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Add a line to the container's /etc/hosts: HOST:IP.
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Inter-container communication on the bridge; `--icc=false` isolates this container from
    /// the other isolated containers (the host stays reachable).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub icc: bool,
    /// Add a capability (e.g. NET_ADMIN, or ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (e.g. NET_RAW, or ALL).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give the container a host device: HOST[:CONTAINER[:PERMISSIONS]] (HOST must be a
    /// character or block device, or a directory of them; CONTAINER defaults to HOST;
    /// PERMISSIONS rw or rwm). As root the node is made in the container (owned as on the host);
    /// rootless the host's node is bind-mounted, so your own access to it applies (repeatable).
    #[arg(long = "device", value_name = "HOST[:CONTAINER[:rwm]]")]
    pub device: Vec<String>,
    /// Every capability, no seccomp filter, the host's devices, writable /sys and /proc (as
    /// docker's). Rootless this is only the privilege of the container's user namespace: what
    /// your own user may do on the host stays the limit. no_new_privs stays set.
    #[arg(long)]
    pub privileged: bool,
    /// Rootful only: host id range container root maps to, as START[:SIZE].
    #[arg(long, value_name = "START[:SIZE]", env = "GOCKER_USERNS_REMAP")]
    pub userns_remap: Option<String>,
    /// Do not use an idmapped mount for the rootfs (rootful); files owned by host root then
    /// appear as nobody inside.
    #[arg(long)]
    pub no_idmap: bool,
    /// Memory limit (e.g. 512m, 1g; minimum 6m). Needs the cgroup v2 memory controller.
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap limit (like docker); -1 for unlimited swap.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs the container may use (e.g. 0.5).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpus: Option<f64>,
    /// Relative CPU weight (docker's shares: 2..262144, default 1024).
    #[arg(
        short = 'c',
        long,
        value_name = "SHARES",
        allow_negative_numbers = true
    )]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (e.g. 0-1, 0,2).
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Security options: `seccomp=default|strict|unconfined|PROFILE.json` (docker or OCI JSON;
    /// default: `default`, which answers EPERM for refused calls; see docs/seccomp.md).
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Workspace mode (also GOCKER_WORKSPACE=1): lift on, the container's own /etc/hosts and
    /// /etc/resolv.conf, and the GOCKER_WORKSPACE_* variables read (docs/workspace-mode.md).
    #[arg(long)]
    pub workspace: bool,
    /// lift inside the container (/.gocker/lift): off, on, or root (container root only).
    /// Default: off; on with --workspace. Also GOCKER_LIFT.
    #[arg(long, value_name = "off|on|root")]
    pub lift: Option<String>,
    /// Extra bind mount SRC:DST[:ro] (also GOCKER_WORKSPACE_BINDS as JSON in workspace mode).
    #[arg(long = "bind", value_name = "SRC:DST[:ro]")]
    pub binds: Vec<String>,
    /// Program ring2 execs as PID 1, with COMMAND [ARG...] as its arguments (also
    /// GOCKER_WORKSPACE_SUPERVISOR in workspace mode).
    #[arg(long, value_name = "PROGRAM")]
    pub supervisor: Option<String>,
    /// RLIMIT_CORE (soft and hard): bytes with k/m/g, or unlimited (also GOCKER_WORKSPACE_CORE_LIMIT).
    #[arg(long, value_name = "BYTES")]
    pub core_limit: Option<String>,
    /// Shell command run with ring1's privileges in the container's mount and network namespaces
    /// before the payload starts; failing fails the start (also GOCKER_WORKSPACE_ENCLAVE).
    #[arg(long, value_name = "SHELL-COMMAND")]
    pub enclave: Option<String>,
    /// After a failure, keep ring1 and its namespaces this many seconds (to `gocker nsenter`
    /// into them) before exiting (also GOCKER_WORKSPACE_DEBUG_SLEEP).
    #[arg(long, value_name = "SECONDS")]
    pub debug_sleep: Option<u64>,
    /// Seconds the command has after a SIGTERM sent to gocker before it is killed with SIGKILL.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub stop_timeout: u64,
    /// The signal `gocker stop` sends first (a name, SIGUSR1 or USR1, or a number; default: the
    /// image's StopSignal, else SIGTERM).
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Set a label on the container: KEY=VALUE, or KEY for an empty value (repeatable; over the
    /// image's Labels; shown by `gocker inspect` under Config.Labels).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// A resource limit of the container's processes, as docker: TYPE=SOFT[:HARD] (the hard limit
    /// defaults to the soft one; -1 is unlimited), TYPE one of as, core, cpu, data, fsize, locks,
    /// memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack (repeatable).
    /// A hard limit above gocker's own cannot be raised inside the container's user namespace:
    /// that is an error naming the limit.
    #[arg(long, value_name = "TYPE=SOFT[:HARD]", allow_hyphen_values = true)]
    pub ulimit: Vec<String>,
    /// A namespaced kernel parameter of the container, as docker: KEY=VALUE (net.*, kernel.shm*,
    /// kernel.msg*, kernel.sem, fs.mqueue.*, kernel.hostname, kernel.domainname), applied in the
    /// container's own namespace; one that would change the host is refused (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm (a tmpfs; default 64m), docker's sizes: 512k, 64m, 1g.
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// An additional group of the container's process: a number, or a name from the
    /// container's /etc/group (repeatable).
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Run Gocker's own small init as PID 1 (as docker's --init): it runs the command as its
    /// child, forwards every signal to it, reaps orphaned processes and exits with the
    /// command's status. Nothing is added to the container's filesystem.
    #[arg(long)]
    pub init: bool,
    /// Restart policy, carried out by the detached container's monitor (needs -d): no,
    /// on-failure[:MAX-RETRIES] (after a non-zero exit), always, unless-stopped. The delay
    /// starts at 100 ms and doubles per restart (at most 1 min), back to 100 ms after 10 s up;
    /// `stop`, `kill` and `rm -f` end it. Not with --rm.
    #[arg(long, value_name = "POLICY", default_value = "no")]
    pub restart: String,
    /// Command to run in the container to check its health (through `/bin/sh -c`, as `gocker
    /// exec` runs it; exit 0 is healthy). Overrides the image's Healthcheck. Needs -d or -it
    /// (the monitor runs it). `inspect` shows State.Health, `ps` the status.
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between health checks (Go duration: 30s, 1m30s, 500ms; default 30s).
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Longest a health check may run before it counts as failed (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Consecutive failures that make the container unhealthy (default 3).
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// Time after the start during which failed checks do not count (default 0s).
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Disable any health check, the image's included.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Write the container's id to FILE when it is created (refused when FILE exists; removed
    /// again when the container cannot be created).
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// The command and its arguments: required (with --entrypoint: the entrypoint's arguments,
    /// optional). Or an IMAGE first, then its command (replacing the image's Cmd; Entrypoint,
    /// Env, WorkingDir and User come from the image unless given here): the first word is an
    /// image when the image store has it or when it can only be an image reference (a
    /// registry, tag or digest: `alpine:3.20`, `localhost:5000/app`, `app@sha256:...`), or when
    /// it is not a command of the default root (`alpine`, `nginx`: pulled when missing, as
    /// docker does). A path (`/bin/sh`) or a command of the default root (`sh`, `ls`) runs on
    /// the default image, gocker-alpine:latest: the provisioned Alpine rootfs that `gocker
    /// rootfs build` registers (else that rootfs directory, else a read-only view of the
    /// host's /). Without --rootfs the image's layers are the read-only lowers of the
    /// container's copy-on-write root.
    #[arg(
        required_unless_present = "entrypoint",
        value_name = "COMMAND [ARG...]"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Print only ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Only the containers that match (repeatable; values of one key OR, different keys AND):
    /// `id=PREFIX`, `name=PART` (a regular expression found in the name, as docker's),
    /// `status=created|running|paused|exited`, `label=KEY[=VALUE]`. A status filter lists stopped
    /// containers without -a.
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Show the N containers created last (all states).
    #[arg(
        short = 'n',
        long = "last",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub last: Option<i64>,
    /// Show the container created last (all states): `-n 1`.
    #[arg(short, long)]
    pub latest: bool,
    /// Show full container ids (default: the first 12 characters).
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: `table` (the default), `json` (gocker's records of the containers, as a
    /// JSON array), or a Go template as docker's, evaluated for each container:
    /// `{{.Names}}\t{{.Status}}`; with a `table ` prefix a header row comes first and the
    /// columns are aligned. Fields: ID, Image, Command, CreatedAt, RunningFor, Ports, State,
    /// Status, Size, Names, Labels, Label "KEY", Mounts, Networks, LocalVolumes; functions:
    /// json, join, split, upper, lower, title, pad, truncate, printf, index, len, eq, ...
    /// (`{{json .}}`: the whole row).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    /// Containers by name or id.
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Memory limit (e.g. 512m, 1g; minimum 6m): memory.max.
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap limit (as docker); -1 for unlimited swap: memory.swap.max.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 0.5): cpu.max.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpus: Option<f64>,
    /// Relative CPU weight (docker's shares, 2..262144): cpu.weight.
    #[arg(
        short = 'c',
        long,
        value_name = "SHARES",
        allow_negative_numbers = true
    )]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (e.g. 0-1, 0,2): cpuset.cpus.
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (-1 for unlimited): pids.max.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy (no, on-failure[:MAX-RETRIES], always, unless-stopped): replaces the
    /// container's own; its monitor applies it at the payload's next exit.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}
