//! Built-in profiles. Both are allow-lists that answer EPERM for what they refuse (never kill),
//! so a refused call looks to the program like missing privilege. `docs/seccomp.md` lists every
//! refused family with its reason.

use crate::{Action, ArchSpec, Op, Profile, Rule};

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET.
pub const CLONE_NAMESPACES: u64 = 0x7E02_0000;

/// File, descriptor and path system calls.
const FILES: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "open",
    "openat",
    "openat2",
    "close",
    "close_range",
    "creat",
    "lseek",
    "_llseek",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "fcntl64",
    "ioctl",
    "flock",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "truncate",
    "ftruncate",
    "truncate64",
    "ftruncate64",
    "fallocate",
    "fadvise64",
    "fadvise64_64",
    "sendfile",
    "sendfile64",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "readahead",
    "stat",
    "lstat",
    "fstat",
    "newfstatat",
    "fstatat64",
    "stat64",
    "lstat64",
    "fstat64",
    "statx",
    "statfs",
    "fstatfs",
    "statfs64",
    "fstatfs64",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getcwd",
    "chdir",
    "fchdir",
    "mkdir",
    "mkdirat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "symlink",
    "symlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "chown32",
    "fchown32",
    "lchown32",
    "utime",
    "utimes",
    "utimensat",
    "utimensat_time64",
    "futimesat",
    "getdents",
    "getdents64",
    "umask",
    "mknod",
    "mknodat",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "name_to_handle_at",
    "pipe",
    "pipe2",
    "memfd_create",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "eventfd",
    "eventfd2",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "timerfd_settime64",
    "timerfd_gettime64",
    "chroot",
];

/// Memory management.
const MEMORY: &[&str] = &[
    "brk",
    "mmap",
    "mmap2",
    "munmap",
    "mremap",
    "mprotect",
    "pkey_mprotect",
    "pkey_alloc",
    "pkey_free",
    "madvise",
    "mlock",
    "mlock2",
    "munlock",
    "mlockall",
    "munlockall",
    "mincore",
    "msync",
    "membarrier",
    "remap_file_pages",
    "get_mempolicy",
];

/// Processes, threads, scheduling, credentials, signals, time.
const PROCESSES: &[&str] = &[
    "fork",
    "vfork",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "waitpid",
    "kill",
    "tkill",
    "tgkill",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "setpgid",
    "getpgrp",
    "getsid",
    "setsid",
    "getpriority",
    "setpriority",
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_getattr",
    "sched_setattr",
    "prctl",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "get_robust_list",
    "futex",
    "futex_time64",
    "futex_waitv",
    "rseq",
    "restart_syscall",
    "getrlimit",
    "setrlimit",
    "prlimit64",
    "ugetrlimit",
    "getrusage",
    "times",
    "uname",
    "sysinfo",
    "getcpu",
    "capget",
    "capset",
    "set_thread_area",
    "get_thread_area",
    "ioprio_get",
    "ioprio_set",
    "pidfd_open",
    "pidfd_send_signal",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getuid32",
    "geteuid32",
    "getgid32",
    "getegid32",
    "setuid",
    "setgid",
    "setuid32",
    "setgid32",
    "setreuid",
    "setregid",
    "setreuid32",
    "setregid32",
    "setresuid",
    "setresgid",
    "setresuid32",
    "setresgid32",
    "getresuid",
    "getresgid",
    "getresuid32",
    "getresgid32",
    "setgroups",
    "getgroups",
    "setgroups32",
    "getgroups32",
    "setfsuid",
    "setfsgid",
    "setfsuid32",
    "setfsgid32",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "rt_sigsuspend",
    "sigaltstack",
    "sigreturn",
    "sigaction",
    "sigprocmask",
    "sigpending",
    "sigsuspend",
    "pause",
    "alarm",
    "nanosleep",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_getres",
    "clock_getres_time64",
    "gettimeofday",
    "time",
    "adjtimex",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_settime",
    "timer_settime64",
    "timer_gettime",
    "timer_gettime64",
    "timer_getoverrun",
    "timer_delete",
    "getrandom",
    "seccomp",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
];

/// Waiting for events, asynchronous I/O.
const EVENTS: &[&str] = &[
    "poll",
    "ppoll",
    "ppoll_time64",
    "select",
    "pselect6",
    "pselect6_time64",
    "_newselect",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_wait",
    "epoll_wait_old",
    "epoll_pwait",
    "epoll_pwait2",
];

const AIO: &[&str] = &[
    "io_setup",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_submit",
    "io_cancel",
];

/// System V and POSIX IPC (namespaced by the container's IPC namespace).
const IPC: &[&str] = &[
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "semget",
    "semop",
    "semctl",
    "semtimedop",
    "semtimedop_time64",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_notify",
    "mq_getsetattr",
    "ipc",
];

/// Sockets (other than `socket` itself, which `strict` restricts by family).
const SOCKETS: &[&str] = &[
    "socketpair",
    "bind",
    "connect",
    "listen",
    "accept",
    "accept4",
    "getsockname",
    "getpeername",
    "sendto",
    "recvfrom",
    "send",
    "recv",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "recvmmsg_time64",
    "setsockopt",
    "getsockopt",
    "shutdown",
    "socketcall",
];

/// Debugging other processes of the container (docker allows these on kernels >= 4.8, where
/// ptrace can no longer bypass seccomp).
const DEBUG: &[&str] = &[
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
];

/// personality(2) values that only select the ABI (PER_LINUX, PER_LINUX32, UNAME26 variants, query).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Whether the running kernel executes x32 system calls (`CONFIG_X86_X32_ABI`, off in most
/// distributions' kernels). Without it, x32 rules in a filter only cost instructions: the kernel
/// answers such calls with ENOSYS, and a filter without the x32 architecture kills them first.
/// The probe is one x32 `getpid`, made only when no filter is loaded yet (under a filter that
/// lacks x32 the probe itself would be killed); under a filter, x32 is assumed.
#[cfg(target_arch = "x86_64")]
fn kernel_runs_x32() -> bool {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    // SAFETY: PR_GET_SECCOMP takes no further arguments and only returns the mode.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP) };
    if mode != 0 {
        return true;
    }
    // SAFETY: getpid takes no arguments and has no effect; with the x32 bit the kernel runs it
    // through the x32 table or answers ENOSYS.
    let r = unsafe { libc::syscall(libc::SYS_getpid | X32_SYSCALL_BIT) };
    !(r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}

fn native_arches() -> Vec<ArchSpec> {
    #[cfg(target_arch = "x86_64")]
    let x86: &[&str] = if kernel_runs_x32() {
        &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else {
        &["SCMP_ARCH_X86"]
    };
    #[cfg(not(target_arch = "x86_64"))]
    let x86: &[&str] = &[];
    let (arch, sub): (&str, &[&str]) = match std::env::consts::ARCH {
        "x86_64" => ("SCMP_ARCH_X86_64", x86),
        "aarch64" => ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
        "riscv64" => ("SCMP_ARCH_RISCV64", &[]),
        "s390x" => ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
        "powerpc64" => ("SCMP_ARCH_PPC64LE", &[]),
        _ => return Vec::new(),
    };
    vec![ArchSpec {
        arch: arch.into(),
        sub: sub.iter().map(|s| s.to_string()).collect(),
    }]
}

fn common(rules: &mut Vec<Rule>) {
    for group in [FILES, MEMORY, PROCESSES, EVENTS, IPC, SOCKETS] {
        rules.push(Rule::new(group, Action::Allow));
    }
    // clone: threads and processes, but no new namespaces (user namespaces above all: they open
    // the kernel's CAP_SYS_ADMIN-in-userns attack surface).
    rules.push(Rule::new(&["clone"], Action::Allow).with_arg(
        0,
        Op::MaskedEqual,
        CLONE_NAMESPACES,
        0,
    ));
    // clone3 passes its flags in memory that seccomp cannot inspect: ENOSYS makes libcs fall back to clone.
    rules.push(Rule::new(&["clone3"], Action::Errno(ENOSYS)));
    for p in PERSONALITIES {
        rules.push(Rule::new(&["personality"], Action::Allow).with_arg(0, Op::Equal, *p, 0));
    }
}

/// Intent of docker's default profile: everything ordinary programs, shells, compilers and
/// servers use; EPERM for kernel-global or privileged interfaces. `mount` goes to the supervisor
/// (ring1), which performs proc, sysfs (read-only) and tmpfs mounts for container root and refuses
/// every other one with EPERM.
pub fn default_profile() -> Profile {
    let mut rules = Vec::new();
    common(&mut rules);
    rules.push(Rule::new(AIO, Action::Allow));
    rules.push(Rule::new(DEBUG, Action::Allow));
    rules.push(Rule::new(&["socket"], Action::Allow));
    // unshare of the harmless bits (CLONE_FILES, CLONE_FS, CLONE_SYSVSEM), no namespaces.
    rules.push(Rule::new(&["unshare"], Action::Allow).with_arg(
        0,
        Op::MaskedEqual,
        CLONE_NAMESPACES,
        0,
    ));
    rules.push(Rule::new(&["mount"], Action::Notify));
    Profile {
        default_action: Action::Errno(EPERM),
        architectures: native_arches(),
        flags: Vec::new(),
        rules,
    }
}

/// For untrusted tools (agent sandboxes): the default profile without debugging of other
/// processes, asynchronous I/O, unshare, chroot, device nodes, mounts of any kind, and with
/// sockets limited to AF_UNIX, AF_INET and AF_INET6.
pub fn strict_profile() -> Profile {
    let mut rules = Vec::new();
    common(&mut rules);
    for r in &mut rules {
        r.names.retain(|n| {
            !matches!(
                n.as_str(),
                "chroot"
                    | "mknod"
                    | "mknodat"
                    | "name_to_handle_at"
                    | "remap_file_pages"
                    | "setxattr"
                    | "lsetxattr"
                    | "fsetxattr"
                    | "removexattr"
                    | "lremovexattr"
                    | "fremovexattr"
            )
        });
    }
    for family in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
        rules.push(Rule::new(&["socket"], Action::Allow).with_arg(0, Op::Equal, family as u64, 0));
    }
    Profile {
        default_action: Action::Errno(EPERM),
        architectures: native_arches(),
        flags: Vec::new(),
        rules,
    }
}

/// A built-in profile by name (`default`, `strict`).
pub fn by_name(name: &str) -> Option<Profile> {
    match name {
        "default" => Some(default_profile()),
        "strict" => Some(strict_profile()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action_of(p: &Profile, name: &str) -> Vec<Action> {
        p.rules
            .iter()
            .filter(|r| r.names.iter().any(|n| n == name))
            .map(|r| r.action)
            .collect()
    }

    #[test]
    fn refused_families_are_not_allowed() {
        for p in [default_profile(), strict_profile()] {
            assert_eq!(p.default_action, Action::Errno(EPERM));
            for s in [
                "keyctl",
                "add_key",
                "request_key",
                "bpf",
                "kexec_load",
                "init_module",
                "finit_module",
                "perf_event_open",
                "reboot",
                "swapon",
                "clock_settime",
                "settimeofday",
                "open_by_handle_at",
                "setns",
                "userfaultfd",
                "io_uring_setup",
            ] {
                assert!(
                    action_of(&p, s).is_empty(),
                    "{s} must fall to the default EPERM"
                );
            }
            // No action anywhere kills.
            assert!(p.rules.iter().all(|r| !matches!(
                r.action,
                Action::KillProcess | Action::KillThread | Action::Trap
            )));
            let clone = p.rules.iter().find(|r| r.names == ["clone"]).unwrap();
            assert_eq!(
                clone.args[0].value & libc::CLONE_NEWUSER as u64,
                libc::CLONE_NEWUSER as u64
            );
        }
        assert_eq!(action_of(&default_profile(), "mount"), [Action::Notify]);
        assert!(action_of(&strict_profile(), "mount").is_empty());
        assert!(
            action_of(&strict_profile(), "ptrace").is_empty()
                && action_of(&strict_profile(), "chroot").is_empty()
        );
        assert!(default_profile().needs_listener() && !strict_profile().needs_listener());
    }

    #[test]
    fn builtins_convert_to_oci_and_back() {
        for p in [default_profile(), strict_profile()] {
            let r = p.resolve(&[]);
            assert_eq!(crate::Profile::from_oci(&r.to_oci().unwrap()).unwrap(), r);
        }
    }
}
