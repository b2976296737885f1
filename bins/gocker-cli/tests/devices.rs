//! `run --device` and `run --privileged` (issue 16), as root and rootless: what the kernel shows
//! inside (the node's type and number, a write through it, how it got there; CapEff, Seccomp,
//! the /sys and /proc mounts), and the refusals, which leave nothing behind.

mod common;

use common::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `sh` with --network none, asserting success; returns stdout.
fn run_ok(extra: &[&str], script: &str) -> String {
    let mut a = vec!["--network", "none"];
    a.extend_from_slice(extra);
    ok(&sh(&a, script))
}

/// The filesystem type of the mount at `target` in a mountinfo text.
fn fstype_at(mountinfo: &str, target: &str) -> Option<String> {
    mountinfo.lines().rev().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (pre.split_whitespace().nth(4)? == target)
            .then(|| post.split_whitespace().next().unwrap_or("").to_owned())
    })
}

#[test]
fn a_device_is_usable_under_its_container_path() {
    let out = run_ok(
        &["--device", "/dev/null:/dev/mynull"],
        "stat -c '%F %t:%T' /dev/mynull; echo hello > /dev/mynull && echo wrote; \
         head -c 10 /dev/mynull | wc -c; echo ---; cat /proc/self/mountinfo",
    );
    let (head, mountinfo) = out.split_once("---\n").unwrap();
    let lines: Vec<&str> = head.lines().collect();
    assert_eq!(lines, ["character special file 1:3", "wrote", "0"], "{out}");
    // Made by gocker as root (mknod on a small tmpfs of its own), the host's node rootless.
    let host_dev = fstype_at(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        "/dev",
    );
    let fs = fstype_at(mountinfo, "/dev/mynull").expect("a mount at /dev/mynull");
    if is_root() {
        assert_eq!(fs, "tmpfs", "{mountinfo}");
    } else {
        assert_eq!(Some(fs), host_dev, "{mountinfo}");
    }
    // The host path defaults the container path.
    let out = run_ok(&["--device", "/dev/full"], "stat -c '%t:%T' /dev/full");
    assert_eq!(out.trim(), "1:7");
}

#[test]
fn bad_devices_are_refused_naming_them_and_nothing_is_created() {
    for (value, says) in [
        (
            "/dev/gocker-no-such-device",
            "/dev/gocker-no-such-device: no such device on the host",
        ),
        (
            "/etc/hostname",
            "/etc/hostname: not a character or block device",
        ),
        (
            "/dev/null:/dev/x:r",
            "cannot limit a device to reading or writing",
        ),
        ("/dev/null:/dev/x:rwz", "combination of r, w and m"),
        ("/dev/null:dev/x", "the container path must be absolute"),
        ("/dev/null:/dev/../x", "\"..\""),
    ] {
        let n = unique("baddev");
        let r = rootfs();
        let o = g(&[
            "run",
            "--rm",
            "--name",
            &n,
            "--network",
            "none",
            "--device",
            value,
            "--rootfs",
            &r,
            "/bin/true",
        ]);
        assert_eq!(o.status.code(), Some(125), "{value}");
        assert!(
            stderr(&o).contains(says) && stderr(&o).contains("--device"),
            "{value}: {}",
            stderr(&o)
        );
        assert!(
            !state_dir().join("names").join(&n).exists(),
            "{value}: a container was recorded"
        );
    }
}

/// The capability mask of every capability this kernel has.
fn all_caps_mask() -> String {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    format!("{:016x}", (1u64 << (last + 1)) - 1)
}

#[test]
fn privileged_gives_every_capability_no_seccomp_devices_and_writable_sys_proc() {
    // A host device that is not one of the container's own, to look for.
    let probe = [
        "/dev/loop-control",
        "/dev/fuse",
        "/dev/net/tun",
        "/dev/kvm",
        "/dev/vda",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let script = format!(
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; \
         echo ---; cat /proc/self/mountinfo; echo ---; {}; \
         echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo host-sysctl-written || echo host-sysctl-refused",
        probe
            .map(|p| format!("stat -c '%t:%T' {p}"))
            .unwrap_or_else(|| "true".into())
    );
    let out = run_ok(&["--privileged"], &script);
    let parts: Vec<&str> = out.split("---\n").collect();
    let status: Vec<&str> = parts[0].lines().collect();
    assert_eq!(
        status,
        [
            format!("CapEff:\t{}", all_caps_mask()),
            "Seccomp:\t0".to_owned()
        ],
        "{out}"
    );
    let mountinfo = parts[1];
    let sys = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/sys"))
        .expect("a /sys mount");
    assert!(
        sys.split_whitespace().nth(5).unwrap().starts_with("rw"),
        "{sys}"
    );
    // No masked or read-only paths under /proc (docker's privileged has none).
    for p in ["/proc/sys", "/proc/kcore", "/proc/sysrq-trigger"] {
        assert_eq!(
            fstype_at(mountinfo, p),
            None,
            "{p} is still masked: {mountinfo}"
        );
    }
    let rest: Vec<&str> = parts[2].lines().collect();
    if let Some(p) = probe {
        let host = rustix::fs::stat(p).unwrap();
        let want = format!(
            "{:x}:{:x}",
            rustix::fs::major(host.st_rdev),
            rustix::fs::minor(host.st_rdev)
        );
        assert_eq!(rest[0], want, "{p} in the container");
    }
    // The privilege is the container's user namespace's: a host-wide knob stays the host's.
    assert_eq!(*rest.last().unwrap(), "host-sysctl-refused", "{out}");
    // Without --privileged: docker's default set, a filter, read-only /sys.
    let out = run_ok(&[], "grep -E '^(CapEff|Seccomp):' /proc/self/status");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}
