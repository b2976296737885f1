//! `cargo xtask conformance`: the OCI runtime-tools validation suite (`validation/*/*.t`) against
//! runc and gocker-oci on the same machine, in the same run.
//!
//! The suite's source is a tarball beside the repository (`../shared/test-suites` from the
//! workspace root, or `GOCKER_TEST_SUITES`). It is unpacked and built with Go 1.22 (Debian's
//! `golang-1.22-go` from bookworm-backports, fully offline: the tarball vendors its dependencies)
//! in a scratch directory outside the repository (`$TMPDIR/gocker-conformance`, or
//! `GOCKER_CONFORMANCE_DIR`), and the build is reused while the tarball is unchanged.
//!
//! Every file runs as root with `RUNTIME` set, once per runtime, with a timeout, from the suite's
//! directory (the files untar `rootfs-amd64.tar.gz` and copy `runtimetest` from there). Each
//! runtime is reached through a wrapper that gives it a state root of its own per file
//! (`--root`), so that files can run side by side and whatever a file leaves behind is found and
//! deleted afterwards. The TAP output is parsed ([`parse_tap`]) into checks; the verdict
//! ([`Comparison`]) is: gocker-oci fully passes at least as many files as runc, and no check runc
//! passes fails for gocker-oci, leaving out the files of [`ALLOWED`] (each with its reason, also in
//! docs/oci.md).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{ensure_packages, is_root, run, step, workspace};

/// The suite's tarball in the test-suites directory.
pub const SUITE: &str = "runtime-tools-5e63903.tar.gz";
/// Where the Go toolchain of `golang-1.22-go` lives.
const GO_BIN: &str = "/usr/lib/go-1.22/bin";

const CGROUP_V1: &str = "reads the limits back from cgroup v1 only (the suite's cgroups package \
    leaves v2 unimplemented); gocker is cgroup v2 only, and this hybrid host binds every \
    controller to v1, so gocker-oci refuses the limits, naming the missing controllers";

/// Files whose results are reported but do not count in the verdict, each with its reason.
pub const ALLOWED: &[(&str, &str)] = &[
    ("linux_cgroups_blkio", CGROUP_V1),
    ("linux_cgroups_cpus", CGROUP_V1),
    ("linux_cgroups_devices", CGROUP_V1),
    ("linux_cgroups_hugetlb", CGROUP_V1),
    ("linux_cgroups_memory", CGROUP_V1),
    ("linux_cgroups_network", CGROUP_V1),
    ("linux_cgroups_pids", CGROUP_V1),
    ("linux_cgroups_relative_blkio", CGROUP_V1),
    ("linux_cgroups_relative_cpus", CGROUP_V1),
    ("linux_cgroups_relative_devices", CGROUP_V1),
    ("linux_cgroups_relative_hugetlb", CGROUP_V1),
    ("linux_cgroups_relative_memory", CGROUP_V1),
    ("linux_cgroups_relative_network", CGROUP_V1),
    ("linux_cgroups_relative_pids", CGROUP_V1),
    (
        "delete_resources",
        "sets a pids limit and reads it back from cgroup v1 (/sys/fs/cgroup/pids); gocker is \
         cgroup v2 only, and this hybrid host binds the pids controller to v1, so gocker-oci \
         refuses the limit, naming the controller",
    ),
    (
        "linux_ns_itype",
        "asks for no namespace at all and expects every one to be the runtime's: gocker always \
         runs a container in a user namespace and a mount namespace of its own (root in the \
         container is never root on the host; docs/oci.md), so those two checks fail by \
         design; the others (ipc, net, pid, uts, cgroup inherited) can pass, but on this host \
         the file stops at create: the runtime's IPC namespace needs the runtime's mqueue \
         instance, and this host has no /dev/mqueue (ring0 does not make one yet)",
    ),
    // Not built yet (issue 14 is open for it): gocker-oci refuses what this file asks for, by
    // name, instead of ignoring it; it leaves the allow-list with the ring changes.
    (
        "linux_ns_path",
        "NOT YET SUPPORTED: two of its checks join a mount namespace by path, which gocker-oci \
         refuses by name (create would setns into it before forking ring1, and ring2 skip its \
         own mount setup); its other namespace joins pass",
    ),
    (
        "pidfile",
        "a race in the test, for every runtime: it starts `true` and then sends SIGKILL; when \
         `true` has already exited, `kill` must fail (the runtime spec says so), and so does the \
         file",
    ),
];

fn allowed(file: &str) -> Option<&'static str> {
    ALLOWED.iter().find(|(f, _)| *f == file).map(|(_, r)| *r)
}

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Run only these files (names without `.t`, e.g. `--only hostname --only mounts`).
    #[arg(long)]
    pub only: Vec<String>,
    /// Seconds each file may take before it is killed.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Files run side by side (each with its own state root).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Print every check of every file, not only the differences.
    #[arg(long)]
    pub verbose: bool,
    /// Report only: exit 0 even when gocker-oci falls short of runc.
    #[arg(long)]
    pub report_only: bool,
    /// Test this gocker-oci binary instead of building target/debug/gocker-oci.
    #[arg(long, value_name = "PATH")]
    pub gocker_oci: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            only: Vec::new(),
            timeout: 120,
            jobs: 2,
            verbose: false,
            report_only: false,
            gocker_oci: None,
        }
    }
}

pub fn main(a: Args) -> Result<()> {
    let ws = workspace();
    let bin = match &a.gocker_oci {
        Some(b) => b.clone(),
        None => {
            step("build: cargo build -p gocker-oci");
            run(Command::new("cargo")
                .current_dir(&ws)
                .args(["build", "-p", "gocker-oci"]))?;
            crate::util::built("debug", "gocker-oci")?
        }
    };
    let cmp = run_suite(&a, &bin)?;
    if !cmp.ok() && !a.report_only {
        bail!("gocker-oci falls short of runc: {}", cmp.shortfall());
    }
    Ok(())
}

/// Installs what the suite needs, builds it, runs it for both runtimes and prints the report.
pub fn run_suite(a: &Args, gocker_oci: &Path) -> Result<Comparison> {
    if !is_root() {
        bail!("the validation suite runs as root (it creates containers with runc and gocker-oci)");
    }
    let t0 = Instant::now();
    let suite = suite_tarball()?;
    ensure_go()?;
    ensure_packages(&["runc", "make", "tar", "util-linux"])?;
    let scratch = scratch_dir();
    let src = build_suite(&suite, &scratch)?;
    let build_time = t0.elapsed();

    let runc = which("runc").context("runc is not on PATH")?;
    let gocker_oci = std::path::absolute(gocker_oci)?;
    if !gocker_oci.is_file() {
        bail!("{} does not exist (build it first)", gocker_oci.display());
    }
    let runtimes = [("runc", runc), ("gocker-oci", gocker_oci)];

    let mut files = validation_files(&src)?;
    if !a.only.is_empty() {
        files.retain(|f| a.only.contains(f));
        if files.is_empty() {
            bail!("no validation file matches --only {}", a.only.join(" "));
        }
    }
    let runs_dir = scratch.join("runs");
    let _ = std::fs::remove_dir_all(&runs_dir);
    std::fs::create_dir_all(&runs_dir)?;
    step(&format!(
        "phase conformance: {} validation files × runc, gocker-oci ({} at a time, {} s each at most; logs in {})",
        files.len(),
        a.jobs.max(1),
        a.timeout,
        runs_dir.display()
    ));

    // Both runtimes interleaved, so that they meet the same machine state.
    let mut queue: Vec<(usize, String)> = Vec::new();
    for f in &files {
        for (i, _) in runtimes.iter().enumerate() {
            queue.push((i, f.clone()));
        }
    }
    queue.reverse();
    let queue = Arc::new(Mutex::new(queue));
    let results: Arc<Mutex<Vec<(usize, FileResult)>>> = Arc::default();
    let t1 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..a.jobs.max(1) {
            let (queue, results, runtimes, src, runs_dir) =
                (queue.clone(), results.clone(), &runtimes, &src, &runs_dir);
            s.spawn(move || loop {
                let Some((i, file)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let (name, bin) = &runtimes[i];
                let r = run_file(src, &runs_dir.join(name), name, bin, &file, a.timeout);
                eprintln!(
                    "  {name:<10} {file:<36} {} ({:.1} s)",
                    r.summary(),
                    r.duration.as_secs_f64()
                );
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let run_time = t1.elapsed();

    let mut by_rt: [BTreeMap<String, FileResult>; 2] = Default::default();
    for (i, r) in Arc::try_unwrap(results).unwrap().into_inner().unwrap() {
        by_rt[i].insert(r.file.clone(), r);
    }
    // A file that one runtime passes and the other does not, or that has a check runc passes
    // and gocker-oci does not, is run again for the runtime that fell short (twice at most):
    // several files race with the container's process (`killsig` signals a shell that may not
    // have set its trap yet). The best run counts, and the report says which one it was.
    let t2 = Instant::now();
    for file in &files {
        if allowed(file).is_some() {
            continue;
        }
        for (i, (name, bin)) in runtimes.iter().enumerate() {
            let other = 1 - i;
            let short = |by_rt: &[BTreeMap<String, FileResult>; 2]| {
                let (Some(mine), Some(theirs)) = (by_rt[i].get(file), by_rt[other].get(file))
                else {
                    return false;
                };
                (!mine.fully_passed() && theirs.fully_passed())
                    || (i == 1 && !file_regressions(theirs, mine).is_empty())
            };
            for attempt in 1..=RETRIES {
                if !short(&by_rt) {
                    break;
                }
                let dir = runs_dir.join(format!("{name}-retry{attempt}"));
                let mut r = run_file(&src, &dir, name, bin, file, a.timeout);
                r.attempt = attempt;
                eprintln!(
                    "  {name:<10} {file:<36} {} ({:.1} s, retry {attempt})",
                    r.summary(),
                    r.duration.as_secs_f64()
                );
                let better = match (i, by_rt[i].get(file), by_rt[other].get(file)) {
                    (_, None, _) => true,
                    (1, Some(old), Some(runc)) => {
                        file_regressions(runc, &r).len() < file_regressions(runc, old).len()
                            || (r.fully_passed() && !old.fully_passed())
                    }
                    (_, Some(old), _) => r.fully_passed() && !old.fully_passed(),
                };
                if better {
                    by_rt[i].insert(file.clone(), r);
                }
            }
        }
    }
    let retry_time = t2.elapsed();
    let [runc_results, gocker_results] = by_rt;
    let cmp = Comparison::new(&runc_results, &gocker_results);
    print!("{}", cmp.report(&runc_results, &gocker_results, a.verbose));
    println!(
        "conformance: {:.0} s in all (suite build {:.0} s, {} files × 2 runtimes {:.0} s, retries {:.0} s)",
        t0.elapsed().as_secs_f64(),
        build_time.as_secs_f64(),
        files.len(),
        run_time.as_secs_f64(),
        retry_time.as_secs_f64()
    );
    Ok(cmp)
}

/// The suite's tarball: `GOCKER_TEST_SUITES/SUITE`, by default `../shared/test-suites` from the
/// workspace root.
pub fn suite_path() -> PathBuf {
    let dir = match std::env::var_os("GOCKER_TEST_SUITES") {
        Some(d) => PathBuf::from(d),
        None => workspace().join("../shared/test-suites"),
    };
    dir.join(SUITE)
}

fn suite_tarball() -> Result<PathBuf> {
    let t = suite_path();
    if !t.is_file() {
        bail!(
            "{} not found (set GOCKER_TEST_SUITES to the directory that holds it)",
            t.display()
        );
    }
    Ok(t)
}

fn scratch_dir() -> PathBuf {
    match std::env::var_os("GOCKER_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join("gocker-conformance"),
    }
}

/// Go ≥ 1.21 (the suite's vendored packages import `slices`): Debian 12 has 1.19, so
/// `golang-1.22-go` comes from bookworm-backports, whose source is added in the style of the
/// host's own (deb822 `.sources` or a one-line `.list`) unless one is configured already.
fn ensure_go() -> Result<()> {
    if Path::new(GO_BIN).join("go").is_file() {
        return Ok(());
    }
    let codename = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_owned))
        .unwrap_or_default();
    if codename == "bookworm" && add_backports("/etc/apt")? {
        run(Command::new("apt-get").args(["update", "-qq"]))?;
    }
    ensure_packages(&["golang-1.22-go"])
}

/// Adds bookworm-backports to the apt sources under `apt` (e.g. `/etc/apt`), unless some source
/// names it already; returns whether it wrote one.
pub(crate) fn add_backports(apt: &str) -> Result<bool> {
    let apt = Path::new(apt);
    let mut sources = vec![apt.join("sources.list")];
    if let Ok(rd) = std::fs::read_dir(apt.join("sources.list.d")) {
        sources.extend(rd.flatten().map(|e| e.path()));
    }
    sources.sort();
    let mut deb822 = None;
    for s in &sources {
        let name = s.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        let text = std::fs::read_to_string(s).unwrap_or_default();
        let active = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("bookworm-backports"));
        if active {
            return Ok(false);
        }
        // The host's main Debian source, as a model for the new one.
        if name.ends_with(".sources")
            && deb822.is_none()
            && text.contains("deb.debian.org/debian\n")
        {
            deb822 = Some(text);
        }
    }
    let dir = apt.join("sources.list.d");
    std::fs::create_dir_all(&dir)?;
    let (path, text) = match deb822 {
        Some(model) => {
            let keyring = model
                .lines()
                .find_map(|l| l.strip_prefix("Signed-By:"))
                .map(str::trim)
                .unwrap_or("/usr/share/keyrings/debian-archive-keyring.gpg")
                .to_owned();
            (
                dir.join("bookworm-backports.sources"),
                format!(
                    "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: {keyring}\n"
                ),
            )
        }
        None => (
            dir.join("bookworm-backports.list"),
            "deb http://deb.debian.org/debian bookworm-backports main\n".to_owned(),
        ),
    };
    step(&format!(
        "adding bookworm-backports to apt: {}",
        path.display()
    ));
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(true)
}

/// Unpacks and builds the suite in `scratch` unless the build there is of this tarball; returns
/// the suite's directory.
fn build_suite(tarball: &Path, scratch: &Path) -> Result<PathBuf> {
    let md = std::fs::metadata(tarball)?;
    let stamp = format!(
        "{} {} {:?}\n",
        tarball.display(),
        md.len(),
        md.modified().ok()
    );
    let src = scratch.join("runtime-tools");
    let stamp_file = scratch.join("built.stamp");
    if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str())
        && src.join("runtimetest").is_file()
    {
        return Ok(src);
    }
    step(&format!(
        "building the validation suite from {} in {}",
        tarball.display(),
        scratch.display()
    ));
    let _ = std::fs::remove_file(&stamp_file);
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(scratch)?;
    run(Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(scratch))?;
    if !src.join("Makefile").is_file() {
        bail!("{} has no runtime-tools/Makefile", tarball.display());
    }
    let path = format!(
        "{GO_BIN}:{}",
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    run(Command::new("make")
        .current_dir(&src)
        .arg(format!("-j{jobs}"))
        .args(["runtimetest", "validation-executables"])
        .env("PATH", path)
        .env("GOFLAGS", "-mod=vendor")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", scratch.join("go-cache"))
        .env("GOPATH", scratch.join("go-path")))?;
    std::fs::write(&stamp_file, stamp)?;
    Ok(src)
}

/// `validation/NAME/NAME.t` and other `.t` files one level down, by name.
fn validation_files(src: &Path) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for dir in std::fs::read_dir(src.join("validation"))? {
        let dir = dir?.path();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in rd.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".t") {
                if dir.file_name().is_some_and(|d| d == stem) {
                    v.push(stem.to_owned());
                }
            }
        }
    }
    v.sort();
    if v.is_empty() {
        bail!("no validation/*/*.t in {}", src.display());
    }
    Ok(v)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One file's run for one runtime.
#[derive(Debug, Clone, Default)]
pub struct FileResult {
    pub file: String,
    pub tap: Tap,
    /// The exit code (`None`: killed, e.g. by the timeout).
    pub exit: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
    pub stderr: String,
    /// Containers the file left behind (deleted afterwards).
    pub leftovers: usize,
    /// 0 for the first run, N for the N-th retry.
    pub attempt: u32,
}

/// How many times a file that falls short is run again.
const RETRIES: u32 = 2;

/// The checks of one file that runc passes and gocker-oci does not.
fn file_regressions(runc: &FileResult, gocker: &FileResult) -> Vec<Regression> {
    let one = |r: &FileResult| BTreeMap::from([(r.file.clone(), r.clone())]);
    Comparison::new(&one(runc), &one(gocker)).regressions
}

impl FileResult {
    /// The file ran to its end with exit status 0, and its TAP reports no failure (see
    /// [`Tap::clean`]).
    pub fn fully_passed(&self) -> bool {
        !self.timed_out && self.exit == Some(0) && self.tap.clean()
    }

    /// Why the file did not fully pass, in a few words (`None` when it did).
    pub fn problem(&self) -> Option<String> {
        if self.timed_out {
            return Some("timed out".into());
        }
        match self.exit {
            None => return Some("killed".into()),
            Some(0) => {}
            Some(c) => {
                let last = self.stderr.lines().rev().find(|l| !l.trim().is_empty());
                return Some(format!(
                    "exit status {c}{}",
                    last.map(|l| format!(": {}", excerpt(l, 200)))
                        .unwrap_or_default()
                ));
            }
        }
        self.tap.problem()
    }

    /// The checks, plus one for the file as a whole (`(file completes)`: exit 0, in time, a
    /// consistent plan, no error outside a test line).
    pub fn checks(&self) -> Vec<(String, Status)> {
        let mut v: Vec<(String, Status)> = self
            .tap
            .keyed()
            .into_iter()
            .map(|(k, t)| (k, t.status))
            .collect();
        let whole = if self.completed() {
            Status::Pass
        } else {
            Status::Fail
        };
        v.push((COMPLETES.into(), whole));
        v
    }

    fn completed(&self) -> bool {
        !self.timed_out && self.exit == Some(0) && self.tap.problem_outside_tests().is_none()
    }

    fn summary(&self) -> String {
        let t = &self.tap;
        let mut s = format!(
            "{} ({} ok, {} not ok, {} skipped)",
            if self.fully_passed() { "PASS" } else { "FAIL" },
            t.passed(),
            t.failed(),
            t.skipped()
        );
        if let Some(p) = self.problem() {
            let _ = write!(s, ": {}", excerpt(&p, 120));
        }
        if self.leftovers > 0 {
            let _ = write!(s, " [{} container(s) left behind]", self.leftovers);
        }
        s
    }

    /// `✓ 4/4`, `✗ 0/1 timeout`, `✓ 3/3 (retry 1)` for the report's table.
    fn cell(&self) -> String {
        format!(
            "{} {}/{}{}{}",
            if self.fully_passed() { "✓" } else { "✗" },
            self.tap.passed(),
            self.tap.tests.len(),
            if self.timed_out { " timeout" } else { "" },
            if self.attempt > 0 {
                format!(" (retry {})", self.attempt)
            } else {
                String::new()
            }
        )
    }
}

/// The name of the check that stands for the file as a whole.
pub const COMPLETES: &str = "(file completes)";

/// Runs `file` with `RUNTIME` pointing at a wrapper of `bin` that has a state root of its own,
/// then deletes what the file left behind.
fn run_file(
    src: &Path,
    dir: &Path,
    runtime: &str,
    bin: &Path,
    file: &str,
    timeout: u64,
) -> FileResult {
    let mut r = FileResult {
        file: file.to_owned(),
        ..Default::default()
    };
    let work = dir.join(file);
    let (state, tmp, wrapper) = (work.join("state"), work.join("tmp"), work.join(runtime));
    let prepared = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(&state)?;
        std::fs::create_dir_all(&tmp)?;
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec '{}' --root '{}' \"$@\"\n",
                bin.display(),
                state.display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
    })();
    if let Err(e) = prepared {
        r.stderr = format!("preparing {}: {e}", work.display());
        return r;
    }
    let t = Instant::now();
    let out = run_with_timeout(
        Command::new(src.join("validation").join(file).join(format!("{file}.t")))
            .current_dir(src)
            .env("RUNTIME", &wrapper)
            // Bundles (os.MkdirTemp) go below the file's own directory, removed afterwards.
            .env("TMPDIR", &tmp),
        Duration::from_secs(timeout),
    );
    r.duration = t.elapsed();
    match out {
        Ok((stdout, stderr, exit, timed_out)) => {
            let _ = std::fs::write(work.join("stdout"), &stdout);
            let _ = std::fs::write(work.join("stderr"), &stderr);
            r.tap = parse_tap(&stdout);
            r.stderr = stderr;
            r.exit = exit;
            r.timed_out = timed_out;
        }
        Err(e) => r.stderr = format!("running {file}.t: {e:#}"),
    }
    r.leftovers = delete_leftovers(&wrapper);
    // A runtime that shares the host's mount namespace (runc, for `linux_ns_itype`, which asks
    // for none) mounts the bundle's rootfs in it and leaves it mounted: those mounts go first.
    unmount_below(&tmp);
    // Keep the logs; the bundles and the state root go.
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&state);
    r
}

/// Mount points of this mount namespace at or below `dir`, deepest first (`/proc/self/mountinfo`'s
/// fifth field, with its octal escapes of space, tab, newline and backslash undone).
fn mounts_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let unescape = |s: &str| {
        let (mut out, mut rest) = (String::new(), s);
        while let Some(i) = rest.find('\\') {
            out.push_str(&rest[..i]);
            let code = rest
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok());
            match code {
                Some(c) => {
                    out.push(char::from(c));
                    rest = &rest[i + 4..];
                }
                None => {
                    out.push('\\');
                    rest = &rest[i + 1..];
                }
            }
        }
        out.push_str(rest);
        PathBuf::from(out)
    };
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|m| m.starts_with(dir))
        .collect();
    // Stable: a mount point listed twice (mounts stacked there) is detached twice.
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found
}

/// Detaches (`umount -l`) every mount at or below `dir`, deepest first, once per listing.
fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for m in mounts_below(&info, dir) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&m)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Deletes (forcibly) every container in the wrapper's state root; returns how many there were.
fn delete_leftovers(wrapper: &Path) -> usize {
    let Ok(out) = Command::new(wrapper)
        .args(["list", "-q"])
        .stderr(Stdio::null())
        .output()
    else {
        return 0;
    };
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    for id in &ids {
        let _ = Command::new(wrapper)
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    ids.len()
}

/// Runs `cmd` in a process group of its own, killing the group after `timeout`; returns stdout,
/// stderr, the exit code and whether it timed out.
fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
) -> Result<(String, String, Option<i32>, bool)> {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    let reader = |mut p: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = p.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped")));
    let err = reader(Box::new(child.stderr.take().expect("piped")));
    let t = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if t.elapsed() > timeout {
            timed_out = true;
            // The whole group: the .t file and the runtime processes it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // A process of the group that outlived the file may hold the pipes: stop waiting for them
    // after a while (and kill the group).
    let collect = |h: std::thread::JoinHandle<String>| {
        let t = Instant::now();
        while !h.is_finished() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !h.is_finished() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
        }
        h.join().unwrap_or_default()
    };
    let (stdout, stderr) = (collect(out), collect(err));
    Ok((stdout, stderr, status.code(), timed_out))
}

/// The result of one TAP test line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// `# SKIP`: not a pass.
    Skip,
    /// `# TODO`: expected to fail, counts as neither.
    Todo,
}

/// One test line (`ok 3 - description`), with the YAML block that follows it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct TapTest {
    pub number: u32,
    pub status: Status,
    pub description: String,
    pub yaml: Option<serde_json::Value>,
}

/// The parsed TAP output of one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tap {
    pub tests: Vec<TapTest>,
    /// The last plan line (`1..N`).
    pub plan: Option<u32>,
    /// The first stream whose plan does not match its test lines.
    pub plan_mismatch: Option<String>,
    /// YAML blocks in a stream without any test line (the hook files report errors so, under
    /// `1..0`).
    pub orphan_yaml: Vec<serde_json::Value>,
    /// `Bail out!` lines.
    pub bail_out: Option<String>,
}

impl Tap {
    pub fn passed(&self) -> usize {
        self.count(Status::Pass)
    }
    pub fn failed(&self) -> usize {
        self.count(Status::Fail)
    }
    pub fn skipped(&self) -> usize {
        self.count(Status::Skip)
    }
    fn count(&self, s: Status) -> usize {
        self.tests.iter().filter(|t| t.status == s).count()
    }

    /// No failed test, no error reported outside a test line, the plan (if any) matches. No
    /// output at all is clean too: the `process_*_fail` files pass by exiting 0 silently.
    pub fn clean(&self) -> bool {
        self.problem().is_none()
    }

    /// What keeps the TAP from being clean.
    pub fn problem(&self) -> Option<String> {
        if let Some(p) = self.problem_outside_tests() {
            return Some(p);
        }
        let failed: Vec<&TapTest> = self
            .tests
            .iter()
            .filter(|t| t.status == Status::Fail)
            .collect();
        match failed.as_slice() {
            [] => None,
            [one] => Some(format!("not ok: {}", one.description)),
            [first, ..] => Some(format!(
                "{} not ok, the first: {}",
                failed.len(),
                first.description
            )),
        }
    }

    fn problem_outside_tests(&self) -> Option<String> {
        if let Some(b) = &self.bail_out {
            return Some(format!("Bail out! {b}"));
        }
        if let Some(y) = self.orphan_yaml.first() {
            let e = y
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| y.to_string());
            return Some(format!("error: {}", excerpt(&e, 300)));
        }
        self.plan_mismatch.clone()
    }

    /// The tests by a key that is the same in every run: the description with the run's own
    /// names (uuids, numbers of temporary directories, pids) normalised, and `[k]` added to the
    /// k-th repetition of the same key within the file.
    pub fn keyed(&self) -> Vec<(String, &TapTest)> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut v = Vec::new();
        for t in &self.tests {
            let base = normalize(&t.description);
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            let key = if *n == 1 {
                base
            } else {
                format!("{base} [{n}]")
            };
            v.push((key, t));
        }
        v
    }
}

/// Parses the TAP 13 that runtime-tools' files print (mndrix/tap-go): `ok N - desc`,
/// `not ok N - desc`, `ok N # SKIP why`, `not ok N # TODO desc`, plans `1..N`, `# diagnostics`
/// and YAML blocks (`  ---` … `  ...`, JSON in practice). A file may print several streams, each
/// from `TAP version 13` (the file's own and runtimetest's, or one per case), each with its own
/// plan. A YAML block belongs to the test line just before it, or else to the next one (the
/// files that run runtimetest write its output first, then the verdict); in a stream without
/// any test line it is an error report (the hook files' way, under `1..0`).
pub fn parse_tap(text: &str) -> Tap {
    #[derive(Default)]
    struct Stream {
        first: usize,
        plan: Option<u32>,
        pending: Vec<serde_json::Value>,
        /// The last significant line was a test line.
        after_test: bool,
    }
    fn close(tap: &mut Tap, st: &mut Stream) {
        let count = tap.tests.len() - st.first;
        let pending = std::mem::take(&mut st.pending);
        if count == 0 {
            tap.orphan_yaml.extend(pending);
        } else if let Some(t) = tap.tests.last_mut() {
            if t.yaml.is_none() {
                t.yaml = pending.into_iter().next();
            }
        }
        if let Some(n) = st.plan {
            if n as usize != count && tap.plan_mismatch.is_none() {
                tap.plan_mismatch = Some(format!("plan 1..{n}, but {count} test lines"));
            }
        }
        *st = Stream {
            first: tap.tests.len(),
            ..Default::default()
        };
    }
    let mut tap = Tap::default();
    let mut st = Stream::default();
    let mut yaml: Option<String> = None;
    for line in text.lines() {
        if let Some(buf) = yaml.as_mut() {
            if line.trim() == "..." {
                let block = yaml.take().unwrap_or_default();
                let value = serde_json::from_str(&block)
                    .unwrap_or_else(|_| serde_json::Value::String(block.trim().to_owned()));
                match tap.tests.last_mut() {
                    Some(t) if st.after_test && t.yaml.is_none() => t.yaml = Some(value),
                    _ => st.pending.push(value),
                }
                st.after_test = false;
            } else {
                buf.push_str(line.strip_prefix("  ").unwrap_or(line));
                buf.push('\n');
            }
            continue;
        }
        let l = line.trim_end();
        if l.trim() == "---" && l.starts_with(' ') {
            yaml = Some(String::new());
            continue;
        }
        if l.starts_with("TAP version") {
            close(&mut tap, &mut st);
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix("1..") {
            if let Ok(n) = rest.split_whitespace().next().unwrap_or("").parse() {
                st.plan = Some(n);
                tap.plan = Some(n);
            }
            st.after_test = false;
            continue;
        }
        if let Some(rest) = l.strip_prefix("Bail out!") {
            tap.bail_out = Some(rest.trim().to_owned());
            continue;
        }
        let (ok, rest) = if let Some(r) = l.strip_prefix("not ok") {
            (false, r)
        } else if let Some(r) = l.strip_prefix("ok") {
            (true, r)
        } else {
            st.after_test = false;
            continue;
        };
        if !rest.is_empty() && !rest.starts_with(' ') {
            st.after_test = false;
            continue;
        }
        let rest = rest.trim_start();
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let number = rest[..digits]
            .parse()
            .unwrap_or((tap.tests.len() - st.first) as u32 + 1);
        let rest = rest[digits..].trim_start();
        let (status, description) = if let Some(d) = directive(rest, "SKIP") {
            (Status::Skip, d)
        } else if let Some(d) = directive(rest, "TODO") {
            (Status::Todo, d)
        } else {
            let d = rest.strip_prefix('-').unwrap_or(rest).trim();
            (if ok { Status::Pass } else { Status::Fail }, d.to_owned())
        };
        let yaml = if st.pending.is_empty() {
            None
        } else {
            Some(st.pending.remove(0))
        };
        tap.tests.push(TapTest {
            number,
            status,
            description,
            yaml,
        });
        st.after_test = true;
    }
    close(&mut tap, &mut st);
    tap
}

/// `# SKIP reason` / `# TODO desc` (case-insensitive, also after a description).
fn directive(rest: &str, word: &str) -> Option<String> {
    let i = rest.find('#')?;
    let after = rest[i + 1..].trim_start();
    if after.len() >= word.len() && after[..word.len()].eq_ignore_ascii_case(word) {
        let before = rest[..i].trim().trim_start_matches('-').trim();
        let after = after[word.len()..].trim();
        return Some(if before.is_empty() { after } else { before }.to_owned());
    }
    None
}

/// A description with what differs from run to run replaced: uuids by `<uuid>` and every run of
/// digits by `#` (temporary names such as `/tmp/ocitest123456/target987`, pids, inode numbers).
pub fn normalize(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if i + 36 <= b.len() && is_uuid(&b[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        if b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push('#');
            continue;
        }
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

fn excerpt(s: &str, max: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        return one;
    }
    let cut: String = one.chars().take(max).collect();
    format!("{cut}…")
}

/// A check runc passes and gocker-oci does not (`status` `None`: gocker-oci's run of the file
/// never got to it).
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub file: String,
    pub check: String,
    pub status: Option<Status>,
    /// Why, from gocker-oci's YAML diagnostic or the file's problem.
    pub detail: String,
    /// The reason of [`ALLOWED`], when the file is allowed.
    pub allowed: Option<&'static str>,
}

/// runc's results against gocker-oci's.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub runc_passed: Vec<String>,
    pub gocker_passed: Vec<String>,
    pub regressions: Vec<Regression>,
}

impl Comparison {
    pub fn new(
        runc: &BTreeMap<String, FileResult>,
        gocker: &BTreeMap<String, FileResult>,
    ) -> Comparison {
        let passed = |m: &BTreeMap<String, FileResult>| {
            m.values()
                .filter(|r| r.fully_passed())
                .map(|r| r.file.clone())
                .collect::<Vec<_>>()
        };
        let mut regressions = Vec::new();
        for (file, r) in runc {
            let g = gocker.get(file);
            let theirs: HashMap<String, Status> = g
                .map(|g| g.checks().into_iter().collect())
                .unwrap_or_default();
            let yaml: HashMap<String, String> = g
                .map(|g| {
                    g.tap
                        .keyed()
                        .into_iter()
                        .filter_map(|(k, t)| Some((k, yaml_detail(t.yaml.as_ref()?)?)))
                        .collect()
                })
                .unwrap_or_default();
            for (check, status) in r.checks() {
                if status != Status::Pass {
                    continue;
                }
                let mine = theirs.get(&check).copied();
                // A check gocker-oci never got to counts only where its file did not pass: a
                // file may rightly end early (`process_capabilities_fail`: runc runs the
                // container that it should have refused, and runtimetest's checks with it).
                let gocker_passed = g.is_some_and(FileResult::fully_passed);
                if mine == Some(Status::Pass) || (mine.is_none() && gocker_passed) {
                    continue;
                }
                let detail = yaml.get(&check).cloned().unwrap_or_else(|| {
                    g.and_then(FileResult::problem)
                        .unwrap_or_else(|| "not run".into())
                });
                regressions.push(Regression {
                    file: file.clone(),
                    check,
                    status: mine,
                    detail,
                    allowed: allowed(file),
                });
            }
        }
        Comparison {
            runc_passed: passed(runc),
            gocker_passed: passed(gocker),
            regressions,
        }
    }

    fn counted(files: &[String]) -> usize {
        files.iter().filter(|f| allowed(f).is_none()).count()
    }

    /// The regressions outside the allowed files.
    pub fn counted_regressions(&self) -> Vec<&Regression> {
        self.regressions
            .iter()
            .filter(|r| r.allowed.is_none())
            .collect()
    }

    /// The verdict: outside the allowed files, gocker-oci fully passes at least as many files as
    /// runc and every check runc passes.
    pub fn ok(&self) -> bool {
        Self::counted(&self.gocker_passed) >= Self::counted(&self.runc_passed)
            && self.counted_regressions().is_empty()
    }

    pub fn shortfall(&self) -> String {
        format!(
            "outside the allowed files, runc fully passes {} files and gocker-oci {}; {} check(s) runc passes fail for gocker-oci",
            Self::counted(&self.runc_passed),
            Self::counted(&self.gocker_passed),
            self.counted_regressions().len()
        )
    }

    pub fn report(
        &self,
        runc: &BTreeMap<String, FileResult>,
        gocker: &BTreeMap<String, FileResult>,
        verbose: bool,
    ) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== runtime-tools validation: per file (✓ fully passed)"
        );
        let _ = writeln!(s, "{:<36} {:<24} {:<24}", "file", "runc", "gocker-oci");
        let files: std::collections::BTreeSet<&String> = runc.keys().chain(gocker.keys()).collect();
        let cell = |r: Option<&FileResult>| r.map_or_else(|| "-".to_owned(), FileResult::cell);
        for f in &files {
            let _ = writeln!(
                s,
                "{:<36} {:<24} {:<24}{}",
                f,
                cell(runc.get(*f)),
                cell(gocker.get(*f)),
                if allowed(f).is_some() {
                    " (allowed)"
                } else {
                    ""
                }
            );
        }
        for (name, m, passed) in [
            ("runc", runc, &self.runc_passed),
            ("gocker-oci", gocker, &self.gocker_passed),
        ] {
            let _ = writeln!(
                s,
                "\n{name}: fully passed {} of {} files ({} outside the allowed files): {}",
                passed.len(),
                m.len(),
                Self::counted(passed),
                passed.join(", ")
            );
            for r in m.values().filter(|r| !r.fully_passed()) {
                let _ = writeln!(
                    s,
                    "  {name} {}: {}",
                    r.file,
                    r.problem().unwrap_or_default()
                );
            }
            if verbose {
                for r in m.values() {
                    for (k, st) in r.checks() {
                        let _ = writeln!(s, "    {} {:?}: {k}", r.file, st);
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "\nchecks runc passes that gocker-oci fails: {} ({} in allowed files)",
            self.regressions.len(),
            self.regressions.len() - self.counted_regressions().len()
        );
        let mut not_run: Vec<(&str, usize, &str)> = Vec::new();
        for r in self.counted_regressions() {
            let Some(st) = r.status else {
                match not_run.iter_mut().find(|(f, _, _)| *f == r.file) {
                    Some((_, n, _)) => *n += 1,
                    None => not_run.push((&r.file, 1, &r.detail)),
                }
                continue;
            };
            let _ = writeln!(
                s,
                "  {}: {} [{}]: {}",
                r.file,
                r.check,
                format!("{st:?}").to_lowercase(),
                excerpt(&r.detail, 300)
            );
        }
        for (f, n, why) in not_run {
            let _ = writeln!(
                s,
                "  {f}: {n} check(s) not run, the file stopped early: {}",
                excerpt(why, 300)
            );
        }
        let mut allowed: Vec<(&str, usize)> = Vec::new();
        for r in self.regressions.iter().filter(|r| r.allowed.is_some()) {
            match allowed.iter_mut().find(|(f, _)| *f == r.file) {
                Some((_, n)) => *n += 1,
                None => allowed.push((&r.file, 1)),
            }
        }
        for (f, n) in allowed {
            let _ = writeln!(s, "  {f} (allowed): {n} check(s)");
        }
        let _ = writeln!(s, "\nallowed files (not counted in the verdict):");
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for (f, why) in ALLOWED {
            match reasons.iter_mut().find(|(w, _)| w == why) {
                Some((_, files)) => files.push(f),
                None => reasons.push((why, vec![f])),
            }
        }
        for (why, files) in reasons {
            let _ = writeln!(s, "  {}: {why}", files.join(", "));
        }
        let _ = writeln!(
            s,
            "\nverdict: {}",
            if self.ok() {
                "gocker-oci passes at least what runc passes".to_owned()
            } else {
                format!("FAILED: {}", self.shortfall())
            }
        );
        s
    }
}

/// The useful part of a YAML diagnostic: `error`, else runtimetest's `stdout` lines that say
/// `not ok`, else `stderr`.
fn yaml_detail(y: &serde_json::Value) -> Option<String> {
    let field = |k: &str| {
        y.get(k)
            .and_then(|v| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    if let Some(e) = field("error") {
        return Some(e.to_owned());
    }
    if let Some(out) = field("stdout") {
        let bad: Vec<&str> = out.lines().filter(|l| l.starts_with("not ok")).collect();
        if !bad.is_empty() {
            return Some(bad.join("; "));
        }
    }
    field("stderr").map(str::to_owned)
}

#[cfg(test)]
mod tests {

    #[test]
    fn mounts_below_a_directory_are_found_deepest_first_with_escapes_undone() {
        let info = "\
44 27 254:0 /x /tmp/c/runs/f/tmp/oci1 rw,relatime - ext4 /dev/vda rw
45 44 0:39 / /tmp/c/runs/f/tmp/oci1/proc rw,nosuid - proc proc rw
47 45 0:41 / /tmp/c/runs/f/tmp/oci1/dev/pts rw - devpts devpts rw
48 44 0:42 / /tmp/c/runs/f/tmp/my\\040dir rw - tmpfs shm rw
49 44 0:42 / /tmp/c/runs/f/tmp/my\\040dir rw - tmpfs shm rw
50 27 0:43 / /tmp/c/runs/f/tmpother rw - tmpfs t rw
51 27 0:44 / /tmp/c/runs/g/tmp rw - tmpfs t rw
";
        let found = mounts_below(info, Path::new("/tmp/c/runs/f/tmp"));
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            found,
            [
                p("/tmp/c/runs/f/tmp/oci1/dev/pts"),
                p("/tmp/c/runs/f/tmp/oci1/proc"),
                p("/tmp/c/runs/f/tmp/oci1"),
                p("/tmp/c/runs/f/tmp/my dir"),
                p("/tmp/c/runs/f/tmp/my dir"),
            ]
        );
    }

    use super::*;

    const RUNTIMETEST: &str = "TAP version 13
ok 1 - root filesystem
ok 2 - hostname
not ok 3 - expected EFFECTIVE capability CAP_CHOWN set
ok 4 # SKIP linux.rootfsPropagation not set
not ok 5 # TODO not implemented yet
  ---
  {
    \"reference\": \"https://example/config.md#process\"
  }
  ...
ok 6 - /proc/self/ns/pid: 4026531836
1..6
";

    #[test]
    fn tap_lines_directives_and_plan() {
        let t = parse_tap(RUNTIMETEST);
        assert_eq!(t.plan, Some(6));
        let st: Vec<Status> = t.tests.iter().map(|t| t.status).collect();
        use Status::*;
        assert_eq!(st, [Pass, Pass, Fail, Skip, Todo, Pass]);
        assert_eq!(
            t.tests[2].description,
            "expected EFFECTIVE capability CAP_CHOWN set"
        );
        assert_eq!(t.tests[3].description, "linux.rootfsPropagation not set");
        assert_eq!(t.tests[4].description, "not implemented yet");
        assert_eq!(
            t.tests[4].yaml.as_ref().unwrap()["reference"],
            "https://example/config.md#process"
        );
        assert_eq!((t.passed(), t.failed(), t.skipped()), (3, 1, 1));
        assert!(!t.clean());
        assert!(
            t.problem().unwrap().contains("CAP_CHOWN"),
            "{:?}",
            t.problem()
        );
    }

    #[test]
    fn a_yaml_block_before_its_test_line_belongs_to_it_when_that_is_the_first() {
        // RuntimeInsideValidate with a TAP harness writes the diagnostic, then the result.
        let t = parse_tap(
            "TAP version 13\n  ---\n  {\n    \"stdout\": \"ok 1 - x\\nnot ok 2 - y\"\n  }\n  ...\nnot ok 1 - check root propagation: shared\n1..1\n",
        );
        assert_eq!(t.tests.len(), 1);
        assert!(t.orphan_yaml.is_empty());
        assert_eq!(t.failed(), 1);
        assert_eq!(
            t.problem().unwrap(),
            "not ok: check root propagation: shared"
        );
    }

    #[test]
    fn an_error_reported_only_as_yaml_under_an_empty_plan_fails_the_file() {
        // validation/hooks: no test line, the error in a YAML block, then `1..0`.
        let out = "TAP version 13\n  ---\n  {\n    \"error\": \"exit status 1\",\n    \"stderr\": \"boom\"\n  }\n  ...\n1..0\n";
        let t = parse_tap(out);
        assert!(t.tests.is_empty());
        assert_eq!(t.plan, Some(0));
        assert_eq!(t.orphan_yaml.len(), 1);
        assert_eq!(t.problem().unwrap(), "error: exit status 1");
        let r = FileResult {
            file: "hooks".into(),
            tap: t,
            exit: Some(0),
            ..Default::default()
        };
        assert!(!r.fully_passed());
        assert_eq!(r.checks(), [(COMPLETES.to_owned(), Status::Fail)]);
        // The same file with nothing to report passes.
        let r = FileResult {
            tap: parse_tap("TAP version 13\n1..0\n"),
            exit: Some(0),
            ..r
        };
        assert!(r.fully_passed());
    }

    #[test]
    fn silent_exit_zero_passes_and_a_fatal_error_fails() {
        // process_*_fail: the runtime refused the config, the file exits 0 and prints nothing.
        let quiet = FileResult {
            file: "process_rlimits_fail".into(),
            tap: parse_tap(""),
            exit: Some(0),
            ..Default::default()
        };
        assert!(quiet.fully_passed());
        assert_eq!(quiet.checks(), [(COMPLETES.to_owned(), Status::Pass)]);
        // util.Fatal: exit 1 and the error on stderr.
        let fatal = FileResult {
            exit: Some(1),
            stderr: "failed to create the container\nexit status 1\n".into(),
            ..quiet.clone()
        };
        assert!(!fatal.fully_passed());
        assert_eq!(fatal.problem().unwrap(), "exit status 1: exit status 1");
        let late = FileResult {
            timed_out: true,
            exit: None,
            ..quiet
        };
        assert_eq!(late.problem().unwrap(), "timed out");
    }

    #[test]
    fn each_stream_has_its_own_plan() {
        // linux_cgroups_cpus: two cases, each a stream of its own; the second has no tests.
        let t = parse_tap("TAP version 13\nok 1 - a\n# expect: 1, actual: 1\nok 2 - b\n1..2\nTAP version 13\n1..0\n");
        assert_eq!(t.tests.len(), 2);
        assert!(t.clean(), "{:?}", t.problem());
        let t = parse_tap("TAP version 13\nok 1 - a\n1..2\nTAP version 13\nok 1 - b\n1..1\n");
        assert_eq!(t.problem().unwrap(), "plan 1..2, but 1 test lines");
        // A YAML block after a test line is that line's, even in a later stream.
        let t = parse_tap("TAP version 13\n1..0\nTAP version 13\nnot ok 1 - x\n  ---\n  {\"error\": \"e\"}\n  ...\n1..1\n");
        assert!(t.orphan_yaml.is_empty());
        assert_eq!(t.tests[0].yaml.as_ref().unwrap()["error"], "e");
    }

    #[test]
    fn a_short_plan_and_bail_out_fail() {
        let t = parse_tap("TAP version 13\n1..3\nok 1 - a\nok 2 - b\n");
        assert_eq!(t.problem().unwrap(), "plan 1..3, but 2 test lines");
        let t = parse_tap("TAP version 13\nok 1 - a\nBail out! no runtime\n");
        assert_eq!(t.problem().unwrap(), "Bail out! no runtime");
        // Lines that only look like tests are not.
        let t = parse_tap("okay then\n# ok 1 - diagnostic\nok\n1..1\n");
        assert_eq!(t.tests.len(), 1);
        assert!(t.clean());
    }

    #[test]
    fn keys_do_not_depend_on_the_runs_own_names() {
        assert_eq!(
            normalize("shared root propagation exposes \"/target2877/mount19/example3\""),
            "shared root propagation exposes \"/target#/mount#/example#\""
        );
        assert_eq!(
            normalize("container 0f8e2a44-1b9c-4d7e-9f00-aabbccddeeff is running, pid 4242"),
            "container <uuid> is running, pid #"
        );
        let t = parse_tap("ok 1 - same\nnot ok 2 - same\nok 3 - other 12\n");
        let k: Vec<String> = t.keyed().into_iter().map(|(k, _)| k).collect();
        assert_eq!(k, ["same", "same [2]", "other #"]);
    }

    fn result(file: &str, tap: &str, exit: i32) -> FileResult {
        FileResult {
            file: file.into(),
            tap: parse_tap(tap),
            exit: Some(exit),
            ..Default::default()
        }
    }

    fn map(v: Vec<FileResult>) -> BTreeMap<String, FileResult> {
        v.into_iter().map(|r| (r.file.clone(), r)).collect()
    }

    #[test]
    fn the_comparison_finds_what_runc_passes_and_gocker_does_not() {
        let runc = map(vec![
            result("hostname", "ok 1 - hostname\nok 2 - uts\n1..2\n", 0),
            result("kill", "ok 1 - kill\n1..1\n", 0),
            result("linux_cgroups_pids", "ok 1 - pids.limit\n1..1\n", 0),
            result("mounts", "not ok 1 - ro /sys\n1..1\n", 0),
        ]);
        let gocker = map(vec![
            result("hostname", "ok 1 - hostname\nnot ok 2 - uts\n1..2\n", 0),
            result("kill", "", 1),
            result("linux_cgroups_pids", "not ok 1 - pids.limit\n1..1\n", 0),
            result("mounts", "ok 1 - ro /sys\n1..1\n", 0),
        ]);
        let c = Comparison::new(&runc, &gocker);
        assert_eq!(c.runc_passed, ["hostname", "kill", "linux_cgroups_pids"]);
        assert_eq!(c.gocker_passed, ["mounts"]);
        let got: Vec<(&str, &str, Option<Status>, bool)> = c
            .regressions
            .iter()
            .map(|r| {
                (
                    r.file.as_str(),
                    r.check.as_str(),
                    r.status,
                    r.allowed.is_some(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("hostname", "uts", Some(Status::Fail), false),
                ("kill", "kill", None, false),
                ("kill", COMPLETES, Some(Status::Fail), false),
                ("linux_cgroups_pids", "pids.limit", Some(Status::Fail), true),
            ]
        );
        assert_eq!(c.counted_regressions().len(), 3);
        assert!(!c.ok());
        // A file whose checks ran but failed still "completes": that check is not a regression.
        assert!(!c
            .regressions
            .iter()
            .any(|r| r.file == "hostname" && r.check == COMPLETES));

        // A file gocker-oci passes without getting to runc's checks is no regression.
        let runc = map(vec![result(
            "process_capabilities_fail",
            "ok 1 - root filesystem\nok 2 - hostname\n1..2\n",
            1,
        )]);
        let gocker = map(vec![result("process_capabilities_fail", "", 0)]);
        let c = Comparison::new(&runc, &gocker);
        assert!(c.regressions.is_empty(), "{:?}", c.regressions);
        assert_eq!(c.gocker_passed, ["process_capabilities_fail"]);
        let runc = map(vec![
            result("hostname", "ok 1 - hostname\nok 2 - uts\n1..2\n", 0),
            result("kill", "ok 1 - kill\n1..1\n", 0),
            result("linux_cgroups_pids", "ok 1 - pids.limit\n1..1\n", 0),
            result("mounts", "not ok 1 - ro /sys\n1..1\n", 0),
        ]);

        // Only allowed differences: the verdict holds.
        let gocker = map(vec![
            result("hostname", "ok 1 - hostname\nok 2 - uts\n1..2\n", 0),
            result("kill", "ok 1 - kill\n1..1\n", 0),
            result("linux_cgroups_pids", "not ok 1 - pids.limit\n1..1\n", 0),
            result("mounts", "ok 1 - ro /sys\n1..1\n", 0),
        ]);
        let c = Comparison::new(&runc, &gocker);
        assert!(c.ok(), "{}", c.shortfall());
        assert!(c
            .report(&runc, &gocker, false)
            .contains("verdict: gocker-oci passes"));
    }

    #[test]
    fn backports_is_added_once_in_the_hosts_style() {
        let dir = std::env::temp_dir().join(format!("xtask-apt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sources.list.d")).unwrap();
        std::fs::write(
            dir.join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        )
        .unwrap();
        let apt = dir.to_str().unwrap();
        assert!(add_backports(apt).unwrap());
        let text =
            std::fs::read_to_string(dir.join("sources.list.d/bookworm-backports.sources")).unwrap();
        assert!(text.contains("Suites: bookworm-backports\n"), "{text}");
        assert!(text.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"));
        assert!(!add_backports(apt).unwrap(), "added twice");

        // A one-line sources.list host gets a one-line list file.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("sources.list"),
            "deb http://deb.debian.org/debian bookworm main\n# deb http://deb.debian.org/debian bookworm-backports main\n",
        )
        .unwrap();
        assert!(add_backports(apt).unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.join("sources.list.d/bookworm-backports.list")).unwrap(),
            "deb http://deb.debian.org/debian bookworm-backports main\n"
        );
        assert!(!add_backports(apt).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
