//! seccomp against the real kernel (issue 4), as root and as the unprivileged users: the default
//! profile refuses with EPERM, ordinary workloads run, mounts of proc/sysfs/tmpfs go through
//! ring1's supervisor, unconfined has no filter, strict and profile files apply, gocker exec
//! gets the same filter.
//!
//! Raw system calls are made by a tiny static helper (C, built with `gcc -static` at test time)
//! bound into the container read-only with `-v` on `/opt` (a directory every rootfs has, so no
//! mount point is created in the shared rootfs).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const HELPER_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const struct { const char *name; long nr; } T[] = {
    {"unshare", SYS_unshare}, {"keyctl", SYS_keyctl}, {"add_key", SYS_add_key}, {"bpf", SYS_bpf},
    {"kexec_load", SYS_kexec_load}, {"init_module", SYS_init_module}, {"perf_event_open", SYS_perf_event_open},
    {"reboot", SYS_reboot}, {"swapon", SYS_swapon}, {"clock_settime", SYS_clock_settime},
    {"open_by_handle_at", SYS_open_by_handle_at}, {"mount", SYS_mount}, {"socket", SYS_socket},
    {"getpid", SYS_getpid}, {"ptrace", SYS_ptrace}, {"setns", SYS_setns},
};

static void *work(void *p) {
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 1000000; i++) x += i;
    *(unsigned long *)p = x;
    return NULL;
}

/* sc NAME [ARG...]: ARG is a number (strtoull base 0) or s:TEXT for a string pointer.
   sc threads N: N pthreads doing arithmetic. Prints "NAME ret=R errno=E". */
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "threads")) {
        int n = argc > 2 ? atoi(argv[2]) : 4;
        pthread_t t[64]; unsigned long r[64];
        for (int i = 0; i < n && i < 64; i++) if (pthread_create(&t[i], NULL, work, &r[i])) { printf("threads failed errno=%d\n", errno); return 1; }
        for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
        printf("threads ok %d\n", n);
        return 0;
    }
    long nr = -1;
    for (unsigned i = 0; i < sizeof T / sizeof T[0]; i++) if (!strcmp(T[i].name, argv[1])) nr = T[i].nr;
    if (nr < 0) { printf("unknown %s\n", argv[1]); return 2; }
    long a[6] = {0};
    for (int i = 2; i < argc && i < 8; i++)
        a[i - 2] = !strncmp(argv[i], "s:", 2) ? (long)(argv[i] + 2) : (long)strtoull(argv[i], NULL, 0);
    errno = 0;
    long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    printf("%s ret=%ld errno=%d\n", argv[1], r, r == -1 ? errno : 0);
    return 0;
}
"#;

/// The directory holding the static helper `sc`.
fn helper_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| static_program("sc", HELPER_C, &["-pthread"]))
}

/// `gocker [PRE...] run --rm --rootfs R -v HELPER:/t:ro EXTRA... /bin/sh -c SCRIPT`
fn run_with(pre: &[&str], extra: &[&str], script: &str) -> Output {
    let r = rootfs();
    let vol = format!("{}:/opt:ro", helper_dir().display());
    let mut args: Vec<&str> = pre.to_vec();
    // The rootfs is shared by every test: writes go to a tmpfs on /run.
    args.extend(["run", "--rm", "--rootfs", &r, "-v", &vol, "--tmpfs", "/run"]);
    args.extend_from_slice(extra);
    args.extend(["/bin/sh", "-c", script]);
    Command::new(bin())
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn sh(extra: &[&str], script: &str) -> Output {
    run_with(&[], extra, script)
}

/// The errno the helper printed for `name`.
#[track_caller]
fn errno_of(out: &str, name: &str) -> i32 {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for {name} in {out}"));
    line.rsplit("errno=")
        .next()
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad line {line}"))
}

const CLONE_NEWUSER: &str = "0x10000000";

/// Each refused call with plausible arguments; the filter answers before the kernel looks at them.
const REFUSED: &[(&str, &str)] = &[
    ("unshare", CLONE_NEWUSER),
    ("keyctl", "0 -3 1"),
    ("add_key", "s:user s:gocker s:x 1 -2"),
    ("bpf", "0 0 0"),
    ("kexec_load", "0 0 0 0"),
    ("init_module", "0 0 s:"),
    ("perf_event_open", "0 0 -1 -1 0"),
    ("reboot", "0xfee1dead 672274793 0x1234567 0"),
    ("swapon", "s:/swapfile 0"),
    ("clock_settime", "0 0"),
    ("open_by_handle_at", "3 0 0"),
    ("mount", "s:/dev/x s:/mnt s:ext4 0 0"),
];

fn refused_script() -> String {
    let mut s = String::from("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir -p /mnt; ");
    for (name, args) in REFUSED {
        s.push_str(&format!("/opt/sc {name} {args}; "));
    }
    s
}

#[test]
fn default_profile_refuses_with_eperm() {
    let out = ok(&sh(&[], &refused_script()));
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    for (name, _) in REFUSED {
        assert_eq!(
            errno_of(&out, name),
            libc::EPERM,
            "{name} must fail with EPERM: {out}"
        );
    }
}

#[test]
fn unconfined_has_no_filter() {
    let out = ok(&sh(
        &["--security-opt", "seccomp=unconfined"],
        &refused_script(),
    ));
    assert!(out.contains("Seccomp:\t0"), "{out}");
    // What the kernel itself decides: a nested user namespace and the keyring work in a container.
    assert_eq!(errno_of(&out, "unshare"), 0, "{out}");
    assert_ne!(errno_of(&out, "keyctl"), libc::EPERM, "{out}");
}

#[test]
fn ordinary_workloads_run_under_the_default_profile() {
    // A compiler-style workload: many processes, pipelines, files, archives, threads.
    let script = r#"
        set -e
        mkdir -p /run/w && cd /run/w
        for i in $(seq 1 60); do ( printf 'int f%d(void){return %d;}\n' $i $i > f$i.c; gzip -c f$i.c > f$i.o; ) & done; wait
        ls *.o | wc -l
        cat f*.c | sort | uniq | wc -l
        seq 1 20000 | sort -rn | head -1
        tar cf all.tar f*.o && tar tf all.tar | wc -l
        find . -name '*.c' | xargs grep -l 'return 7;' 
        awk 'BEGIN{s=0; for(i=1;i<=100;i++) s+=i; print s}'
        sed -n 's/int \(f[0-9]*\).*/\1/p' f3.c
        /opt/sc threads 8
        ln -s f1.c link && readlink link && rm link
        chmod 600 f2.c && stat -c %a f2.c
        date >/dev/null && id -u && hostname >/dev/null && ps >/dev/null
        echo done
    "#;
    let out = ok(&sh(&[], script));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "60",
            "60",
            "20000",
            "60",
            "./f7.c",
            "5050",
            "f3",
            "threads ok 8",
            "f1.c",
            "600",
            "0",
            "done"
        ],
        "{out}"
    );
}

#[test]
fn supervisor_mounts_proc_and_tmpfs_and_refuses_others() {
    let script = r#"
        mkdir -p /run/t
        mount -t proc proc /mnt && echo proc-ok
        grep -q ' /mnt rw,nosuid,nodev,noexec.* - proc ' /proc/self/mountinfo && echo proc-in-mountinfo
        test -d /mnt/1 && echo pid1-visible
        test -e /mnt/$$/status && echo own-pid-visible
        grep -c ' /mnt/' /proc/self/mountinfo
        cd /run/t && mount -t tmpfs -o size=1m,mode=700 scratch . && cd / && echo tmpfs-ok
        grep -q ' /run/t .* - tmpfs .*size=1024k,mode=700' /proc/self/mountinfo && echo tmpfs-in-mountinfo
        echo hello > /run/t/x && cat /run/t/x
        /opt/sc mount s:/dev/x s:/mnt s:ext4 0 0
        /opt/sc mount s:/run s:/mnt s:none 4096 0
        mount -t ext4 /dev/x /mnt 2>/dev/null || echo ext4-refused
    "#;
    let out = ok(&sh(&[], script));
    for want in [
        "proc-ok",
        "proc-in-mountinfo",
        "pid1-visible",
        "own-pid-visible",
        "tmpfs-ok",
        "tmpfs-in-mountinfo",
        "hello",
        "ext4-refused",
    ] {
        assert!(out.lines().any(|l| l == want), "missing {want}: {out}");
    }
    // The container's masked and read-only /proc paths are applied to the new proc too.
    let masks: u32 = out
        .lines()
        .find_map(|l| l.parse().ok())
        .expect("count of mounts under /mnt");
    assert!(masks >= 5, "masks under the new proc: {out}");
    let refusals: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("mount ret="))
        .collect();
    assert_eq!(
        refusals,
        ["mount ret=-1 errno=1", "mount ret=-1 errno=1"],
        "ext4 and bind (MS_BIND) get EPERM: {out}"
    );
}

#[test]
fn supervisor_mounts_sysfs_read_only_and_only_for_container_root() {
    let out = ok(&sh(&[], "mkdir -p /run/s && mount -t sysfs sysfs /run/s && grep ' /run/s ' /proc/self/mountinfo; touch /run/s/x 2>/dev/null || echo ro"));
    assert!(
        out.contains(" /run/s ro,") && out.contains(" - sysfs ") && out.contains("\nro"),
        "{out}"
    );
    // A non-root user of the container may not mount (with a single mapped id there is no other user).
    if std::env::var("GOCKER_TEST_MODE").as_deref() != Ok("rootless-single") {
        let out = ok(&sh(
            &["-u", "1000:1000"],
            "/opt/sc mount s:proc s:/mnt s:proc 0 0",
        ));
        assert_eq!(errno_of(&out, "mount"), libc::EPERM, "{out}");
    }
}

#[test]
fn strict_profile_is_tighter() {
    let script = "/opt/sc mount s:proc s:/mnt s:proc 0 0; /opt/sc socket 16 3 0; /opt/sc socket 1 1 0; /opt/sc ptrace 0 0 0 0; /opt/sc unshare 0x400; /opt/sc threads 4";
    let out = ok(&sh(&["--security-opt", "seccomp=strict"], script));
    assert_eq!(errno_of(&out, "mount"), libc::EPERM, "{out}");
    assert!(
        out.contains("socket ret=-1 errno=1"),
        "AF_NETLINK refused: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("socket ret=") && l.ends_with("errno=0")),
        "AF_UNIX allowed: {out}"
    );
    assert_eq!(errno_of(&out, "ptrace"), libc::EPERM, "{out}");
    assert_eq!(errno_of(&out, "unshare"), libc::EPERM, "{out}");
    assert!(out.contains("threads ok 4"), "{out}");
}

#[test]
fn profile_file_and_debug_output() {
    let dir = std::env::temp_dir().join(format!("gocker-seccomp-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("p.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                        {"names":["bpf"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = run_with(
        &["--debug"],
        &["--security-opt", &opt],
        "mkdir /run/nope 2>&1; echo rc=$?",
    );
    let out = ok(&o);
    assert!(
        out.contains("Permission denied") && out.contains("rc=1"),
        "{out}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("seccomp profile {}: hash ", profile.display()))
            && err.contains(", 2 rules"),
        "{err}"
    );
    let o = run_with(&["--debug"], &[], "true");
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("seccomp profile default: hash ") && err.contains(" rules"),
        "{err}"
    );
    assert!(err.contains("BPF instructions"), "{err}");
    // A broken profile is a gocker error naming the file.
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#).unwrap();
    let o = sh(&["--security-opt", &opt], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("SCMP_ACT_BOGUS"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exec_spawn_mode_serves_notifications_too() {
    let o = Command::new(bin())
        .args(["run", "--rm", "--rootfs", &rootfs(), "/bin/sh", "-c", "grep Seccomp: /proc/self/status; mkdir -p /mnt; mount -t proc p /mnt && test -d /mnt/1 && echo mounted"])
        .env("GOCKER_SPAWN", "exec")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(
        out.contains("Seccomp:\t2") && out.contains("mounted"),
        "{out}"
    );
}

#[test]
fn gocker_exec_gets_the_containers_filter() {
    let r = rootfs();
    let vol = format!("{}:/opt:ro", helper_dir().display());
    let g = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let script = "grep Seccomp: /proc/self/status; /opt/sc socket 16 3 0; /opt/sc mount s:proc s:/mnt s:proc 0 0; /opt/sc unshare 0x10000000";
    for profile in ["default", "strict"] {
        let name = format!("scexec-{profile}-{}", std::process::id());
        let opt = format!("seccomp={profile}");
        ok(&g(&[
            "run",
            "-d",
            "--name",
            &name,
            "--rootfs",
            &r,
            "-v",
            &vol,
            "--security-opt",
            &opt,
            "/bin/sh",
            "-c",
            "sleep 30",
        ]));
        let o = g(&["exec", &name, "/bin/sh", "-c", script]);
        let _ = g(&["rm", "-f", &name]);
        let out = ok(&o);
        assert!(out.contains("Seccomp:\t2"), "{profile}: {out}");
        assert_eq!(errno_of(&out, "unshare"), libc::EPERM, "{profile}: {out}");
        // default: mount notifies in the container, but an exec'd process has no supervisor: EPERM
        // (a notify rule loaded without a listener would answer ENOSYS). strict refuses it outright.
        assert_eq!(errno_of(&out, "mount"), libc::EPERM, "{profile}: {out}");
        // AF_NETLINK: allowed by default, refused by strict — the exec'd process has the container's profile.
        let netlink = errno_of(&out, "socket");
        if profile == "strict" {
            assert_eq!(netlink, libc::EPERM, "{out}");
        } else {
            assert_eq!(netlink, 0, "{out}");
        }
    }
}
