//! Preparing the payload process in ring2: identity, capabilities, and finding the executable.

use std::collections::HashSet;
use std::ffi::CString;
use std::str::FromStr;

use caps::{CapSet, Capability};
use gocker_seccomp::load::Prepared;
use oci_spec::runtime::{Capabilities, Process};
use rustix::process::{Gid, Uid};

use crate::{Result, RuntimeError};

/// The default PATH when the spec's environment has none (docker's).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn to_caps(set: &Option<Capabilities>) -> Result<HashSet<Capability>> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let cap = Capability::from_str(&name)
            .map_err(|_| RuntimeError::Config(format!("unknown capability {name}")))?;
        out.insert(cap);
    }
    Ok(out)
}

fn caps_err(what: &str, e: caps::errors::CapsError) -> RuntimeError {
    RuntimeError::Ring {
        stage: "drop capabilities".into(),
        message: format!("{what}: {e}"),
    }
}

/// Limits the bounding set to what the spec allows (must run while still privileged).
pub(crate) fn drop_bounding(p: &Process) -> Result<()> {
    let Some(c) = p.capabilities() else {
        return Ok(());
    };
    let keep = to_caps(c.bounding())?;
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| caps_err(&format!("drop {cap} from bounding set"), e))?;
        }
    }
    Ok(())
}

/// Switches to the spec's user and groups. Supplementary groups are set only where `setgroups(2)`
/// is allowed (not in a single-id rootless namespace, whose setgroups is denied).
pub(crate) fn set_user(p: &Process, setgroups_allowed: bool) -> Result<()> {
    let u = p.user();
    let fail = |what: String, e: rustix::io::Errno| {
        let hint = if e == rustix::io::Errno::INVAL {
            " (the id is not mapped in the container's user namespace)"
        } else {
            ""
        };
        RuntimeError::Ring {
            stage: "set user".into(),
            message: format!("{what}: {e}{hint}"),
        }
    };
    if setgroups_allowed {
        let groups: Vec<Gid> = u
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        rustix::thread::set_thread_groups(&groups).map_err(|e| fail("setgroups".into(), e))?;
    }
    let (uid, gid) = (Uid::from_raw(u.uid()), Gid::from_raw(u.gid()));
    // The raw syscalls act on this thread only; ring2 is single-threaded so that is the process.
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| fail(format!("setresgid({})", u.gid()), e))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| fail(format!("setresuid({})", u.uid()), e))?;
    if let Some(mask) = u.umask() {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
    }
    Ok(())
}

/// Sets the effective, permitted, inheritable and ambient sets from the spec (after [`set_user`]),
/// for root and non-root users alike (runtime spec: `process.capabilities`). A non-root user keeps
/// its permitted set through the uid change only with `PR_SET_KEEPCAPS` ([`become_payload`] sets
/// it around [`set_user`], as runc does); its effective set is empty then and is set here. What
/// survives the payload's `execve` for a non-root user without file capabilities is the ambient
/// set (the kernel's rules), so a spec that wants capabilities for such a user lists them there.
pub(crate) fn set_capabilities(p: &Process) -> Result<()> {
    let Some(c) = p.capabilities() else {
        return Ok(());
    };
    caps::clear(None, CapSet::Ambient).map_err(|e| caps_err("clear ambient set", e))?;
    caps::set(None, CapSet::Inheritable, &to_caps(c.inheritable())?)
        .map_err(|e| caps_err("set inheritable", e))?;
    caps::set(None, CapSet::Effective, &to_caps(c.effective())?)
        .map_err(|e| caps_err("set effective", e))?;
    caps::set(None, CapSet::Permitted, &to_caps(c.permitted())?)
        .map_err(|e| caps_err("set permitted", e))?;
    // The kernel only allows ambient capabilities that are also permitted and inheritable; like
    // runc, skip the others (runc's own default config.json lists ambient caps without inheritable).
    let inheritable = to_caps(c.inheritable())?;
    let permitted = to_caps(c.permitted())?;
    for cap in to_caps(c.ambient())? {
        if inheritable.contains(&cap) && permitted.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(|e| caps_err(&format!("raise ambient {cap}"), e))?;
        }
    }
    Ok(())
}

/// Applies `process.rlimits` (e.g. RLIMIT_NOFILE, RLIMIT_CORE).
pub(crate) fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let resource = match name.as_str() {
            "RLIMIT_CPU" => libc::RLIMIT_CPU,
            "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
            "RLIMIT_DATA" => libc::RLIMIT_DATA,
            "RLIMIT_STACK" => libc::RLIMIT_STACK,
            "RLIMIT_CORE" => libc::RLIMIT_CORE,
            "RLIMIT_RSS" => libc::RLIMIT_RSS,
            "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
            "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
            "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
            "RLIMIT_AS" => libc::RLIMIT_AS,
            "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
            "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
            "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
            "RLIMIT_NICE" => libc::RLIMIT_NICE,
            "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
            "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
            other => return Err(RuntimeError::Config(format!("unknown rlimit {other}"))),
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(resource, &lim) } == -1 {
            return Err(RuntimeError::Ring {
                stage: "set rlimits".into(),
                message: format!(
                    "{name}={}:{}: {}",
                    r.soft(),
                    r.hard(),
                    std::io::Error::last_os_error()
                ),
            });
        }
    }
    Ok(())
}

/// The prepared `execve` arguments.
pub(crate) struct ExecPlan {
    pub cmd: String,
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// `--init`: execute this descriptor (the init, [`crate::init`]) instead of the candidates.
    init: Option<std::os::fd::OwnedFd>,
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| RuntimeError::Config(format!("{what} contains a NUL byte: {s:?}")))
}

impl ExecPlan {
    pub(crate) fn new(p: &Process) -> Result<Self> {
        let args = p.args().clone().unwrap_or_default();
        let cmd = args
            .first()
            .cloned()
            .ok_or_else(|| RuntimeError::Config("process.args is empty".into()))?;
        let env = p.env().clone().unwrap_or_default();
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_owned();
        let candidates = if cmd.contains('/') {
            vec![cstring(&cmd, "command")?]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstring(&format!("{}/{cmd}", d.trim_end_matches('/')), "PATH entry"))
                .collect::<Result<_>>()?
        };
        Ok(ExecPlan {
            argv: args
                .iter()
                .map(|a| cstring(a, "argument"))
                .collect::<Result<_>>()?,
            envp: env
                .iter()
                .map(|e| cstring(e, "environment variable"))
                .collect::<Result<_>>()?,
            candidates,
            cmd,
            init: None,
        })
    }

    /// `--init`: execute `init` (a descriptor of the init binary) as `gocker-init -- ARGV...`;
    /// the init finds the command on the container's PATH itself.
    pub(crate) fn under_init(mut self, init: std::os::fd::OwnedFd) -> ExecPlan {
        let mut argv = vec![
            CString::new("gocker-init").expect("no NUL"),
            CString::new("--").expect("no NUL"),
        ];
        argv.append(&mut self.argv);
        self.argv = argv;
        self.init = Some(init);
        self
    }

    /// Tries each candidate like `execvp`; returns only on failure, with the errno to report
    /// (`EACCES` if any candidate existed but could not be executed, else the first other error).
    pub(crate) fn exec(&self) -> rustix::io::Errno {
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        if let Some(fd) = &self.init {
            // SAFETY: as execve below; the descriptor is open (fexecve only returns on failure).
            unsafe {
                libc::fexecve(
                    std::os::fd::AsRawFd::as_raw_fd(fd),
                    argv.as_ptr(),
                    envp.as_ptr(),
                )
            };
            return rustix::io::Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            );
        }
        let mut result = rustix::io::Errno::NOENT;
        for c in &self.candidates {
            // execve only returns on failure.
            // SAFETY: argv and envp are NULL-terminated arrays of pointers into live CStrings.
            unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            let e = rustix::io::Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            );
            match e {
                rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => {}
                rustix::io::Errno::ACCESS => result = e,
                other => return other,
            }
        }
        result
    }
}

/// What every process that will exec in the container does first, the container's init and
/// `exec` alike: every descriptor from `first_fd` up close-on-exec (no host descriptor survives
/// into the payload, CVE-2024-21626, including whatever an embedder or the caller of `exec`
/// leaked to us), the spec's rlimits and personality, and the capability bounding set.
pub(crate) fn preamble(
    k: &mut dyn Finalize,
    p: &Process,
    spec: &oci_spec::runtime::Spec,
    first_fd: u32,
) -> Result<()> {
    k.cloexec_from(first_fd)
        .map_err(|e| RuntimeError::sys("close_range", format!("fds >= {first_fd}"), e))?;
    k.set_rlimits(p)?;
    k.set_personality(spec)?;
    k.drop_bounding(p)
}

/// Makes this process non-dumpable until its next `execve` (which resets the flag for the
/// payload). A process of the container can then neither ptrace it nor open its `/proc/PID/exe`,
/// `mem`, `fd/` or `cwd`: the kernel requires `CAP_SYS_PTRACE` in the user namespace its memory
/// was created in, the host's for a process forked from the runtime (CVE-2019-5736 class, and
/// the ptrace window before the seccomp filter). Inherited by children; every change of
/// credentials (`setns` into a user namespace, `setresuid`) resets it to `fs.suid_dumpable`, so
/// it is set again after each.
pub(crate) fn set_non_dumpable() -> Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| RuntimeError::sys("prctl(PR_SET_DUMPABLE, 0)", "runtime process", e))
}

/// The steps of the privilege drop, one call each: the seam through which the order of
/// [`become_payload`] is tested without a kernel (youki's `Syscall` double is the model; the
/// rings' other steps are in `crate::initsys`).
pub(crate) trait Privileges {
    fn load_seccomp(&mut self, filter: &Prepared) -> Result<()>;
    fn keep_capabilities(&mut self, keep: bool) -> Result<()>;
    fn set_user(&mut self, p: &Process, setgroups_allowed: bool) -> Result<()>;
    fn set_capabilities(&mut self, p: &Process) -> Result<()>;
    fn set_non_dumpable(&mut self) -> Result<()>;
    fn after_identity(&mut self) -> Result<()>;
    fn set_no_new_privs(&mut self) -> Result<()>;
    fn reset_signals(&mut self);
}

/// The whole of the last stretch before `execve` of a process of the container: [`preamble`],
/// then [`become_payload`], then the exec itself.
pub(crate) trait Finalize: Privileges {
    fn cloexec_from(&mut self, first: u32) -> std::io::Result<()>;
    fn set_rlimits(&mut self, p: &Process) -> Result<()>;
    fn set_personality(&mut self, spec: &oci_spec::runtime::Spec) -> Result<()>;
    fn drop_bounding(&mut self, p: &Process) -> Result<()>;
    /// Returns only on failure, with the errno to report ([`ExecPlan::exec`]).
    fn exec(&mut self, plan: &ExecPlan) -> rustix::io::Errno;
}

/// A process that makes the real calls: [`Privileges`] and [`Finalize`] are the system calls
/// above for every implementor, which supplies only the two steps that differ between the
/// container's init and `exec` (where a filter's listener goes; what to redo once the
/// credentials changed). The test doubles implement the two traits themselves, so none of them
/// can reach a real call by omission.
pub(crate) trait KernelHooks {
    fn load_seccomp(&mut self, filter: &Prepared) -> Result<()>;
    fn after_identity(&mut self) -> Result<()>;
}

impl<T: KernelHooks> Privileges for T {
    fn load_seccomp(&mut self, filter: &Prepared) -> Result<()> {
        KernelHooks::load_seccomp(self, filter)
    }
    fn keep_capabilities(&mut self, keep: bool) -> Result<()> {
        rustix::thread::set_keep_capabilities(keep).map_err(|e| {
            RuntimeError::sys("prctl(PR_SET_KEEPCAPS)", format!("{}", u8::from(keep)), e)
        })
    }
    fn set_user(&mut self, p: &Process, setgroups_allowed: bool) -> Result<()> {
        set_user(p, setgroups_allowed)
    }
    fn set_capabilities(&mut self, p: &Process) -> Result<()> {
        set_capabilities(p)
    }
    fn set_non_dumpable(&mut self) -> Result<()> {
        set_non_dumpable()
    }
    fn after_identity(&mut self) -> Result<()> {
        KernelHooks::after_identity(self)
    }
    fn set_no_new_privs(&mut self) -> Result<()> {
        rustix::thread::set_no_new_privs(true)
            .map_err(|e| RuntimeError::sys("prctl(PR_SET_NO_NEW_PRIVS)", "payload", e))
    }
    fn reset_signals(&mut self) {
        reset_signals()
    }
}

impl<T: KernelHooks> Finalize for T {
    fn cloexec_from(&mut self, first: u32) -> std::io::Result<()> {
        cloexec_from(first)
    }
    fn set_rlimits(&mut self, p: &Process) -> Result<()> {
        set_rlimits(p)
    }
    fn set_personality(&mut self, spec: &oci_spec::runtime::Spec) -> Result<()> {
        set_personality(spec)
    }
    fn drop_bounding(&mut self, p: &Process) -> Result<()> {
        drop_bounding(p)
    }
    fn exec(&mut self, plan: &ExecPlan) -> rustix::io::Errno {
        plan.exec()
    }
}

/// The last steps before `execve` of a process of the container, shared by ring2 (the payload)
/// and `exec`: the spec's identity and capability sets, `no_new_privs`, default signal
/// dispositions, and the seccomp filter at the one place the kernel allows it. Without
/// `no_new_privs` only a `CAP_SYS_ADMIN` holder may install a filter, so it is loaded first, while
/// the capabilities are still there, and the identity changes pass through it (as runc does);
/// with `no_new_privs` it is the very last step. A change from uid 0 to another clears the
/// permitted and effective sets unless `PR_SET_KEEPCAPS` is set, and the spec's sets apply to a
/// non-root user too. Every credential change resets the dumpable flag: non-dumpable again right
/// after; `after_identity` runs then too (credential changes clear the parent-death signal:
/// ring2 sets it again there).
pub(crate) fn become_payload(
    k: &mut dyn Privileges,
    p: &Process,
    setgroups_allowed: bool,
    filter: Option<&Prepared>,
) -> Result<()> {
    let nnp = p.no_new_privileges().unwrap_or(false);
    if let (Some(f), false) = (filter, nnp) {
        k.load_seccomp(f)?;
    }
    let keep = p.user().uid() != 0 && p.capabilities().is_some();
    if keep {
        k.keep_capabilities(true)?;
    }
    k.set_user(p, setgroups_allowed)?;
    if keep {
        k.keep_capabilities(false)?;
    }
    k.set_capabilities(p)?;
    k.set_non_dumpable()?;
    k.after_identity()?;
    if nnp {
        k.set_no_new_privs()?;
    }
    k.reset_signals();
    if let (Some(f), true) = (filter, nnp) {
        k.load_seccomp(f)?;
    }
    Ok(())
}

/// Default dispositions and an empty mask for the payload: the Rust runtime ignores SIGPIPE and
/// ring0 may have blocked the forwarded signals; neither must leak into the container.
pub(crate) fn reset_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition to SIG_DFL has no memory-safety preconditions.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty, initialised sigset and a null old-set pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// `linux.personality`: the execution domain of the payload (LINUX32: `uname -m` says i686 on
/// x86_64). Flags are refused when the bundle is checked.
pub(crate) fn set_personality(spec: &oci_spec::runtime::Spec) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) else {
        return Ok(());
    };
    let persona = match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    };
    // SAFETY: personality(2) takes a plain integer and touches no memory of ours.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(RuntimeError::sys(
            "personality",
            format!("linux.personality {:?}", p.domain()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so that none of ours (or an embedder's)
/// reaches the program exec'd next (CVE-2024-21626). Async-signal-safe: one raw syscall.
pub(crate) fn cloexec_from(first: u32) -> std::io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own descriptors.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Points the chosen standard descriptors at /dev/null (best effort: a detached process that
/// must not hold, or write to, its caller's terminal or pipes).
pub(crate) fn stdio_to_null(stdin: bool, stdout: bool, stderr: bool) {
    let Ok(null) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return;
    };
    if stdin {
        let _ = rustix::stdio::dup2_stdin(&null);
    }
    if stdout {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    if stderr {
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}

/// A one-instruction program (`SECCOMP_RET_ALLOW`), for the seam's tests (never loaded).
#[cfg(test)]
pub(crate) fn test_bpf() -> gocker_seccomp::Bpf {
    gocker_seccomp::Bpf {
        hash: "test".into(),
        program: vec![0x06, 0, 0, 0, 0, 0, 0xff, 0x7f],
        listener: false,
        flags: Vec::new(),
        unknown: Vec::new(),
    }
}

#[cfg(test)]
fn test_filter() -> Prepared {
    let b = test_bpf();
    Prepared::new(&b, gocker_seccomp::LoadFlags::for_program(&b)).expect("valid program")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the steps instead of making them.
    #[derive(Default)]
    struct Recorder(Vec<&'static str>);

    impl Privileges for Recorder {
        fn load_seccomp(&mut self, _: &Prepared) -> Result<()> {
            self.0.push("seccomp");
            Ok(())
        }
        fn keep_capabilities(&mut self, keep: bool) -> Result<()> {
            self.0.push(if keep { "keepcaps=1" } else { "keepcaps=0" });
            Ok(())
        }
        fn set_user(&mut self, _: &Process, _: bool) -> Result<()> {
            self.0.push("setresuid");
            Ok(())
        }
        fn set_capabilities(&mut self, _: &Process) -> Result<()> {
            self.0.push("capset");
            Ok(())
        }
        fn set_non_dumpable(&mut self) -> Result<()> {
            self.0.push("nondumpable");
            Ok(())
        }
        fn after_identity(&mut self) -> Result<()> {
            self.0.push("pdeathsig");
            Ok(())
        }
        fn set_no_new_privs(&mut self) -> Result<()> {
            self.0.push("nnp");
            Ok(())
        }
        fn reset_signals(&mut self) {
            self.0.push("signals");
        }
    }

    fn steps(uid: u32, nnp: bool, filter: bool) -> Vec<&'static str> {
        let mut p: Process = serde_json::from_value(serde_json::json!({
            "cwd": "/", "args": ["true"], "user": {"uid": uid, "gid": uid},
            "noNewPrivileges": nnp,
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        }))
        .unwrap();
        if uid == 12345 {
            p.set_capabilities(None);
        }
        let mut r = Recorder::default();
        let f = filter.then(test_filter);
        become_payload(&mut r, &p, true, f.as_ref()).unwrap();
        r.0
    }

    #[test]
    fn with_no_new_privs_the_filter_is_the_very_last_step() {
        assert_eq!(
            steps(0, true, true),
            [
                "setresuid",
                "capset",
                "nondumpable",
                "pdeathsig",
                "nnp",
                "signals",
                "seccomp"
            ]
        );
    }

    #[test]
    fn without_no_new_privs_the_filter_comes_first_while_privileged() {
        assert_eq!(
            steps(0, false, true),
            [
                "seccomp",
                "setresuid",
                "capset",
                "nondumpable",
                "pdeathsig",
                "signals"
            ]
        );
    }

    #[test]
    fn a_non_root_user_keeps_its_listed_capabilities_through_the_uid_change() {
        assert_eq!(
            steps(1000, true, false),
            [
                "keepcaps=1",
                "setresuid",
                "keepcaps=0",
                "capset",
                "nondumpable",
                "pdeathsig",
                "nnp",
                "signals"
            ]
        );
        // Without capabilities in the spec there is nothing to keep.
        assert_eq!(
            steps(12345, false, false),
            ["setresuid", "capset", "nondumpable", "pdeathsig", "signals"]
        );
    }
    use oci_spec::runtime::ProcessBuilder;

    #[test]
    fn path_search_uses_spec_path() {
        let p = ProcessBuilder::default()
            .args(vec!["sh".to_string(), "-c".to_string(), "true".to_string()])
            .env(vec!["PATH=/opt/bin:/bin".to_string()])
            .build()
            .unwrap();
        let plan = ExecPlan::new(&p).unwrap();
        let c: Vec<_> = plan
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(c, ["/opt/bin/sh", "/bin/sh"]);
        let p = ProcessBuilder::default()
            .args(vec!["./run".to_string()])
            .build()
            .unwrap();
        assert_eq!(ExecPlan::new(&p).unwrap().candidates.len(), 1);
    }

    #[test]
    fn capability_names_convert() {
        let set: Capabilities = [
            oci_spec::runtime::Capability::Chown,
            oci_spec::runtime::Capability::NetBindService,
        ]
        .into_iter()
        .collect();
        let c = to_caps(&Some(set)).unwrap();
        assert!(
            c.contains(&Capability::CAP_CHOWN) && c.contains(&Capability::CAP_NET_BIND_SERVICE)
        );
    }
}
