//! `-v/--volume` and `--tmpfs` against the real kernel, as root and as unprivileged users.

mod common;
use common::*;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn rootfs() -> PathBuf {
    PathBuf::from(
        std::env::var_os("GOCKER_TEST_ROOTFS")
            .expect("set GOCKER_TEST_ROOTFS (run via cargo xtask itest)"),
    )
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gocker-vol-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(root: &std::path::Path, extra: &[&str], script: &str) -> Output {
    let mut args = vec![
        "run".to_string(),
        "--rm".into(),
        "--rootfs".into(),
        root.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["/bin/sh".into(), "-c".into(), script.into()]);
    Command::new(bin())
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn volume_writes_reach_the_host_and_ro_refuses() {
    let dir = tmp("rw");
    std::fs::write(dir.join("in.txt"), "from host").unwrap();
    let spec = format!("{}:/data", dir.display());
    let ro = format!("{}:/ro:ro", dir.display());
    let o = run(&rootfs(), &["-v", &spec, "-v", &ro], "cat /data/in.txt; echo; echo from-container > /data/out.txt; echo x > /ro/nope; echo rc=$?");
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out} {}", text(&o.stderr));
    assert!(out.starts_with("from host\n"), "{out}");
    assert!(
        out.contains("rc=1") && text(&o.stderr).contains("Read-only file system"),
        "{out} {}",
        text(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "from-container\n"
    );
    assert!(!dir.join("nope").exists());
    // Root: the volume is idmapped, so container root writes as host root. Rootless: as the user.
    let owner = std::fs::metadata(dir.join("out.txt")).unwrap().uid();
    assert_eq!(owner, rustix::process::geteuid().as_raw());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn volume_target_through_an_escaping_symlink_stays_inside() {
    // A private copy of the rootfs with a symlink pointing at a host directory.
    let work = tmp("sym");
    let root = work.join("rootfs");
    // As an unprivileged user, cp cannot read the rootfs's /root (0700): what matters is the rest.
    let _ = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&root)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(root.join("bin/sh").exists(), "copy of the rootfs failed");
    let outside = work.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
    let src = work.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), "m").unwrap();

    // The symlink's target does not exist inside the rootfs: refused, nothing on the host.
    let spec = format!("{}:/evil/x", src.display());
    let o = run(&root, &["-v", &spec], "ls /evil/x");
    assert_eq!(
        o.status.code(),
        Some(125),
        "{} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("/evil/x"), "{}", text(&o.stderr));
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "something was created outside the rootfs"
    );

    // Once the target exists inside the rootfs, the mount lands there (confined), not on the host dir.
    let inside = root.join(outside.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    let o = run(&root, &["-v", &spec], "cat /evil/x/marker");
    assert_eq!(text(&o.stdout), "m", "{}", text(&o.stderr));
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "the host directory was touched"
    );
    // The root is a copy-on-write overlay over the rootfs (docs/storage-roots.md), as root and
    // rootless: the mount point is made in the container's upper layer, never in the rootfs.
    assert!(
        !inside.join("x").exists(),
        "the mount point was created in the rootfs directory"
    );
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn bad_volume_and_tmpfs_specs_name_the_flag() {
    for (flag, value) in [
        ("-v", "./relative:/data"),
        ("-v", "/nonexistent-src-xyz:/data"),
        ("-v", "/tmp:/data:zz"),
        ("--tmpfs", "relative"),
    ] {
        let o = run(&rootfs(), &[flag, value], "true");
        assert_eq!(o.status.code(), Some(125), "{flag} {value}");
        let err = text(&o.stderr);
        assert!(
            err.contains(value) && (err.contains("--volume") || err.contains("--tmpfs")),
            "{err}"
        );
    }
}

#[test]
fn tmpfs_mount_with_options() {
    let o = run(
        &rootfs(),
        &["--tmpfs", "/scratch:size=1m,mode=1777"],
        "grep ' /scratch ' /proc/self/mountinfo; stat -c %a /scratch",
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.contains("tmpfs") && out.contains("size=1024k"), "{out}");
    assert!(out.trim_end().ends_with("1777"), "{out}");
}
