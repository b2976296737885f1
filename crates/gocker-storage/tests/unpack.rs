//! Layer unpacking against tars generated here, hostile ones included.

mod common;

use common::*;
use gocker_storage::{unpack_layer, LayerContext, StorageError, Store, UnpackOptions};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn ctx(media_type: &str) -> LayerContext {
    LayerContext {
        image: "test.local/hostile:1".into(),
        blob: "sha256:feedface".into(),
        media_type: media_type.into(),
        expected_diff_id: None,
    }
}

const ROOTFUL: UnpackOptions = UnpackOptions {
    rootless: false,
    xattr_whiteouts: false,
};
const ROOTLESS: UnpackOptions = UnpackOptions {
    rootless: true,
    xattr_whiteouts: false,
};

fn unpack(
    tar: &[u8],
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<gocker_storage::UnpackReport, StorageError> {
    unpack_layer(
        tar,
        dest,
        &ctx("application/vnd.oci.image.layer.v1.tar"),
        opts,
    )
}

fn unpack_err(tar: &[u8], opts: &UnpackOptions) -> String {
    let d = tempfile::tempdir().unwrap();
    unpack(tar, d.path(), opts).unwrap_err().to_string()
}

#[test]
fn regular_files_dirs_modes_owners_and_mtimes_are_kept() {
    let d = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .dir("./", 0o755)
        .dir("etc/", 0o750)
        .file_owned("etc/hostname", b"box\n", 0o640, 1234)
        .file("bin/tool", b"#!/bin/sh\n", 0o4755)
        .finish();
    let r = unpack(&tar, d.path(), &ROOTFUL).unwrap();
    assert_eq!(r.entries, 4);
    assert_eq!(r.diff_id.to_string(), sha256(&tar));
    let m = fs::metadata(d.path().join("etc/hostname")).unwrap();
    assert_eq!(fs::read(d.path().join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(m.mtime(), 1_600_000_000);
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (1234, 1234));
    }
    let m = fs::metadata(d.path().join("etc")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o750);
    assert_eq!(
        m.mtime(),
        1_600_000_000,
        "directory mtimes are set after their children"
    );
    // A parent that had no entry of its own is created.
    assert_eq!(
        fs::metadata(d.path().join("bin/tool")).unwrap().mode() & 0o7777,
        0o4755
    );
}

#[test]
fn rootless_mode_does_not_chown_and_keeps_dirs_writable() {
    let d = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .dir("ro/", 0o555)
        .file_owned("ro/f", b"x", 0o600, 4321)
        .finish();
    unpack(&tar, d.path(), &ROOTLESS).unwrap();
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(
        fs::metadata(d.path().join("ro/f")).unwrap().uid(),
        me,
        "no chown when rootless"
    );
    assert_eq!(
        fs::metadata(d.path().join("ro")).unwrap().mode() & 0o777,
        0o755,
        "u+rwx kept so the store can remove it"
    );
}

#[test]
fn whiteouts_become_overlay_char_devices() {
    let d = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .file("etc/gone", b"earlier in this layer", 0o644)
        .file("etc/.wh.gone", b"", 0o644)
        .file(".wh.vanished", b"", 0o644)
        .file(".wh..wh.plnk", b"", 0o644)
        .finish();
    let r = unpack(&tar, d.path(), &ROOTFUL).unwrap();
    assert_eq!(r.whiteouts, 2);
    for p in ["etc/gone", "vanished"] {
        let m = fs::symlink_metadata(d.path().join(p)).unwrap();
        assert!(m.file_type().is_char_device(), "{p} is a whiteout device");
        assert_eq!(m.rdev(), 0, "{p} is 0:0");
    }
    assert!(
        !d.path().join(".wh.vanished").exists(),
        "the .wh. file itself is not written"
    );
    assert!(!d.path().join(".wh..wh.plnk").exists());
    assert!(r.notes.iter().any(|n| n.contains("aufs")), "{:?}", r.notes);
}

#[test]
fn rootless_xattr_whiteouts_when_mknod_is_not_possible() {
    let d = tempfile::tempdir().unwrap();
    let tar = RawTar::new().file("dir/.wh.gone", b"", 0o644).finish();
    let opts = UnpackOptions {
        rootless: true,
        xattr_whiteouts: true,
    };
    unpack(&tar, d.path(), &opts).unwrap();
    let w = d.path().join("dir/gone");
    let m = fs::symlink_metadata(&w).unwrap();
    assert!(m.file_type().is_file() && m.len() == 0);
    assert_eq!(getxattr(&w, "user.overlay.whiteout"), Some(vec![]));
    assert_eq!(
        getxattr(&d.path().join("dir"), "user.overlay.whiteouts"),
        Some(vec![])
    );
}

#[test]
fn opaque_directories_get_overlay_xattrs() {
    let d = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .dir("var/", 0o755)
        .file("var/keep", b"new", 0o644)
        .file("var/.wh..wh..opq", b"", 0o644)
        .finish();
    let r = unpack(&tar, d.path(), &ROOTFUL).unwrap();
    assert_eq!(r.opaque_dirs, 1);
    let var = d.path().join("var");
    assert_eq!(
        getxattr(&var, "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    if is_root() {
        assert_eq!(
            getxattr(&var, "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
    }
    assert!(var.join("keep").exists(), "entries of the same layer stay");
    assert!(!var.join(".wh..wh..opq").exists());

    // Rootless: only the user.* form.
    let d2 = tempfile::tempdir().unwrap();
    unpack(&tar, d2.path(), &ROOTLESS).unwrap();
    assert_eq!(
        getxattr(&d2.path().join("var"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        getxattr(&d2.path().join("var"), "trusted.overlay.opaque"),
        None
    );
}

#[test]
fn hard_links_and_symlinks_inside_the_layer() {
    let d = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .file("bin/busybox", b"BB", 0o755)
        .hardlink("bin/sh", "bin/busybox")
        .hardlink("./bin/ls", "./bin/busybox")
        .symlink("bin/vi", "/bin/busybox")
        .symlink("lib", "usr/lib")
        .finish();
    unpack(&tar, d.path(), &ROOTFUL).unwrap();
    let a = fs::metadata(d.path().join("bin/busybox")).unwrap();
    let b = fs::metadata(d.path().join("bin/sh")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 3);
    assert_eq!(
        fs::read_link(d.path().join("bin/vi")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::read_link(d.path().join("lib")).unwrap(),
        Path::new("usr/lib")
    );
}

#[test]
fn dot_dot_and_absolute_entries_are_refused_naming_layer_and_entry() {
    let outside = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    let nested = d.path().join("a/b");
    fs::create_dir_all(&nested).unwrap();
    let tar = RawTar::new().file("../../etc/x", b"pwned", 0o644).finish();
    let e = unpack(&tar, &nested, &ROOTFUL).unwrap_err().to_string();
    assert!(e.contains("../../etc/x") && e.contains("'..'"), "{e}");
    assert!(
        e.contains("test.local/hostile:1") && e.contains("sha256:feedface"),
        "{e}"
    );
    assert!(!d.path().join("etc").exists());

    let abs = format!("{}/x", outside.path().display());
    let tar = RawTar::new().file(&abs, b"pwned", 0o644).finish();
    let e = unpack_err(&tar, &ROOTFUL);
    assert!(e.contains("absolute path"), "{e}");
    assert!(!outside.path().join("x").exists());

    let tar = RawTar::new()
        .file("ok", b"", 0o644)
        .hardlink("l", "../../../etc/passwd")
        .finish();
    let e = unpack_err(&tar, &ROOTFUL);
    assert!(
        e.contains("hard link target") && e.contains("inside the layer"),
        "{e}"
    );
    let tar = RawTar::new().hardlink("l", "/etc/passwd").finish();
    assert!(unpack_err(&tar, &ROOTFUL).contains("absolute path"));
}

#[test]
fn writes_through_an_absolute_symlink_stay_inside_the_layer() {
    // 1. The symlink points at a host directory that has no counterpart in the layer: refused.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let tar = RawTar::new()
        .symlink("escape", &target)
        .file("escape/pwned", b"pwned", 0o644)
        .finish();
    let d = tempfile::tempdir().unwrap();
    let e = unpack(&tar, d.path(), &ROOTFUL).unwrap_err().to_string();
    assert!(
        e.contains("escape/pwned")
            && e.contains("dangling symlink")
            && e.contains("sha256:feedface"),
        "{e}"
    );
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );

    // 2. It points at a directory the layer has: resolved as if the layer were "/", the write
    //    lands inside the layer, never in the host's /etc.
    let host_file = Path::new("/etc/gocker-storage-unpack-test-must-not-exist");
    assert!(!host_file.exists());
    let tar = RawTar::new()
        .dir("etc/", 0o755)
        .symlink("etclink", "/etc")
        .file(
            "etclink/gocker-storage-unpack-test-must-not-exist",
            b"pwned",
            0o644,
        )
        .symlink("up", "../../../../../..")
        .file("up/also", b"pwned", 0o644)
        .finish();
    let d = tempfile::tempdir().unwrap();
    unpack(&tar, d.path(), &ROOTFUL).unwrap();
    assert!(!host_file.exists(), "the host's /etc was not written");
    assert_eq!(
        fs::read(
            d.path()
                .join("etc/gocker-storage-unpack-test-must-not-exist")
        )
        .unwrap(),
        b"pwned"
    );
    assert_eq!(fs::read(d.path().join("also")).unwrap(), b"pwned");
    assert!(!d.path().parent().unwrap().join("also").exists());
}

#[test]
fn a_symlink_is_replaced_not_followed_by_a_later_file() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"original").unwrap();
    let d = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .symlink("link", victim.to_str().unwrap())
        .file("link", b"overwritten?", 0o644)
        .finish();
    unpack(&tar, d.path(), &ROOTFUL).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"original");
    let m = fs::symlink_metadata(d.path().join("link")).unwrap();
    assert!(m.file_type().is_file());
}

#[test]
fn hard_link_through_a_symlink_cannot_reach_host_files() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("secret");
    fs::write(&victim, b"host secret").unwrap();
    let d = tempfile::tempdir().unwrap();
    let tar = RawTar::new()
        .symlink("evil", outside.path().to_str().unwrap())
        .hardlink("stolen", "evil/secret")
        .finish();
    let e = unpack(&tar, d.path(), &ROOTFUL).unwrap_err().to_string();
    assert!(
        e.contains("stolen") && e.contains("not in the layer"),
        "{e}"
    );
    assert_eq!(
        fs::metadata(&victim).unwrap().nlink(),
        1,
        "no link to the host file was made"
    );
}

#[test]
fn truncated_gzip_is_an_error_naming_image_and_blob_and_leaves_no_layer_dir() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let big: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let tar = RawTar::new()
        .file("a", &big, 0o644)
        .file("b", b"tail", 0o644)
        .finish();
    let gz = gzip(&tar);
    let truncated = &gz[..gz.len() / 2];
    // Direct unpack: the error says truncated.
    let d = tempfile::tempdir().unwrap();
    let e = unpack_layer(
        truncated,
        d.path(),
        &ctx("application/vnd.oci.image.layer.v1.tar+gzip"),
        &ROOTFUL,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("truncated")
            && e.contains("test.local/hostile:1")
            && e.contains("sha256:feedface"),
        "{e}"
    );
    // Through the store: no partial layer directory, nothing in tmp.
    let blob = store.put_blob_bytes("x", None, truncated).unwrap();
    let diff_id = gocker_storage::Digest::parse(&sha256(&tar)).unwrap();
    let e = store
        .unpack_blob(
            "test.local/img:1",
            &blob,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &diff_id,
            &ROOTFUL,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test.local/img:1") && e.contains(&blob.to_string()) && e.contains("truncated"),
        "{e}"
    );
    assert!(!store.layer_dir(&diff_id).exists());
    let leftovers: Vec<_> = fs::read_dir(store_dir.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec!["partial"],
        "only the partial-download dir remains"
    );
}

#[test]
fn plain_tar_cut_at_a_header_boundary_fails_the_diff_id_check() {
    let tar = RawTar::new()
        .file("a", b"1", 0o644)
        .file("b", b"2", 0o644)
        .finish();
    let cut = &tar[..1024]; // header + data of "a", then EOF
    let d = tempfile::tempdir().unwrap();
    let mut c = ctx("application/vnd.oci.image.layer.v1.tar");
    c.expected_diff_id = Some(gocker_storage::Digest::parse(&sha256(&tar)).unwrap());
    let e = unpack_layer(cut, d.path(), &c, &ROOTFUL)
        .unwrap_err()
        .to_string();
    assert!(e.contains("diff_id mismatch"), "{e}");
}

#[test]
fn device_nodes_are_skipped_with_a_note_when_rootless() {
    let tar = RawTar::new()
        .chardev("dev/null", 1, 3)
        .file("dev/keep", b"", 0o644)
        .finish();
    let d = tempfile::tempdir().unwrap();
    let r = unpack(&tar, d.path(), &ROOTLESS).unwrap();
    assert!(!d.path().join("dev/null").exists());
    assert!(d.path().join("dev/keep").exists());
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("dev/null") && n.contains("device node skipped")),
        "{:?}",
        r.notes
    );
    if is_root() {
        let d = tempfile::tempdir().unwrap();
        unpack(&tar, d.path(), &ROOTFUL).unwrap();
        let m = fs::symlink_metadata(d.path().join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
    }
}

#[test]
fn xattrs_are_kept_but_overlay_xattrs_from_the_tar_are_dropped() {
    let tar = RawTar::new()
        .pax_xattrs(&[
            ("user.note", b"hello"),
            ("trusted.overlay.redirect", b"/etc"),
            (
                "security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
        ])
        .file("bin/ping", b"elf", 0o755)
        .finish();
    let d = tempfile::tempdir().unwrap();
    let r = unpack(&tar, d.path(), &ROOTFUL).unwrap();
    let p = d.path().join("bin/ping");
    assert_eq!(getxattr(&p, "user.note").as_deref(), Some(&b"hello"[..]));
    assert_eq!(getxattr(&p, "trusted.overlay.redirect"), None);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("trusted.overlay.redirect")),
        "{:?}",
        r.notes
    );
    if is_root() {
        assert!(
            getxattr(&p, "security.capability").is_some(),
            "file capabilities kept as root"
        );
    }
    let d = tempfile::tempdir().unwrap();
    let r = unpack(&tar, d.path(), &ROOTLESS).unwrap();
    assert_eq!(
        getxattr(&d.path().join("bin/ping"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("security.capability (rootless)")),
        "{:?}",
        r.notes
    );
}

#[test]
fn zstd_and_gzip_are_detected_and_a_lying_media_type_is_refused() {
    let tar = RawTar::new().file("z", b"zstd!", 0o644).finish();
    for (data, mt) in [
        (zstd(&tar), "application/vnd.oci.image.layer.v1.tar+zstd"),
        (
            gzip(&tar),
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
        (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let r = unpack_layer(&data[..], d.path(), &ctx(mt), &ROOTFUL).unwrap();
        assert_eq!(r.diff_id.to_string(), sha256(&tar), "{mt}");
        assert_eq!(fs::read(d.path().join("z")).unwrap(), b"zstd!");
    }
    let d = tempfile::tempdir().unwrap();
    let e = unpack_layer(
        &tar[..],
        d.path(),
        &ctx("application/vnd.oci.image.layer.v1.tar+gzip"),
        &ROOTFUL,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("says Gzip but the content is None"), "{e}");
    let e = unpack_layer(&b""[..], d.path(), &ctx("x"), &ROOTFUL)
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty layer"), "{e}");
}

#[test]
fn overlayfs_honours_the_unpacked_whiteouts_and_opaque_dirs() {
    if !is_root() {
        eprintln!("overlay mount check needs root; the unpack checks above still ran");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let lower = d.path().join("lower");
    let upper = d.path().join("upper");
    let mnt = d.path().join("mnt");
    for p in [&lower, &upper, &mnt] {
        fs::create_dir(p).unwrap();
    }
    let base = RawTar::new()
        .file("etc/passwd", b"root", 0o644)
        .file("etc/shadow", b"x", 0o600)
        .file("var/old/a", b"a", 0o644)
        .finish();
    let top = RawTar::new()
        .file("etc/.wh.shadow", b"", 0o644)
        .dir("var/old/", 0o755)
        .file("var/old/.wh..wh..opq", b"", 0o644)
        .file("var/old/b", b"b", 0o644)
        .finish();
    unpack(&base, &lower, &ROOTFUL).unwrap();
    unpack(&top, &upper, &ROOTFUL).unwrap();
    let opts = format!("lowerdir={}:{}", upper.display(), lower.display());
    let copts = std::ffi::CString::new(opts.clone()).unwrap();
    let r = rustix::mount::mount(
        "overlay",
        &mnt,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        Some(copts.as_c_str()),
    );
    if let Err(e) = r {
        panic!("mounting overlayfs ({opts}) failed: {e}; this host's kernel needs overlay support");
    }
    let seen = (
        mnt.join("etc/passwd").exists(),
        mnt.join("etc/shadow").exists(),
        mnt.join("var/old/a").exists(),
        mnt.join("var/old/b").exists(),
    );
    rustix::mount::unmount(&mnt, rustix::mount::UnmountFlags::DETACH).unwrap();
    assert_eq!(
        seen,
        (true, false, false, true),
        "(passwd, shadow whited out, a hidden by opaque, b)"
    );
}

fn unprivileged_tar() -> Vec<u8> {
    RawTar::new()
        .dir("etc/", 0o755)
        .file_owned("etc/passwd", b"root:x:0:0::/:/bin/sh\n", 0o644, 0)
        .file("etc/.wh.shadow", b"", 0o644)
        .dir("var/", 0o555)
        .file("var/.wh..wh..opq", b"", 0o644)
        .chardev("dev/console", 5, 1)
        .symlink("escape", "/")
        .file("escape/tmp-x", b"inside", 0o644)
        .hardlink("etc/passwd-", "etc/passwd")
        .finish()
}

/// Unpacks for real as uid 65534: the test binary re-runs this test as `nobody`.
#[test]
fn unpacking_as_an_unprivileged_user_works() {
    const CHILD: &str = "GOCKER_STORAGE_UNPACK_AS_CHILD";
    if let Ok(dest) = std::env::var(CHILD) {
        assert!(!is_root(), "the child runs unprivileged");
        let opts = UnpackOptions::for_current_user();
        assert!(opts.rootless);
        let r = unpack(&unprivileged_tar(), Path::new(&dest), &opts).unwrap();
        assert!(
            r.notes.iter().any(|n| n.contains("dev/console")),
            "{:?}",
            r.notes
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let layer = d.path().join("layer");
    fs::create_dir(&layer).unwrap();
    if !is_root() {
        // Already unprivileged: run it directly.
        unpack(
            &unprivileged_tar(),
            &layer,
            &UnpackOptions::for_current_user(),
        )
        .unwrap();
    } else {
        use std::os::unix::process::CommandExt;
        fs::set_permissions(
            d.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        rustix::fs::chown(
            &layer,
            Some(rustix::fs::Uid::from_raw(65534)),
            Some(rustix::fs::Gid::from_raw(65534)),
        )
        .unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "unpacking_as_an_unprivileged_user_works",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD, &layer)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "unprivileged unpack failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let me = if is_root() {
        65534
    } else {
        rustix::process::geteuid().as_raw()
    };
    assert_eq!(fs::metadata(layer.join("etc/passwd")).unwrap().uid(), me);
    assert_eq!(fs::metadata(layer.join("etc/passwd-")).unwrap().nlink(), 2);
    let wh = layer.join("etc/shadow");
    let m = fs::symlink_metadata(&wh).unwrap();
    // mknod of a 0:0 whiteout is allowed unprivileged since Linux 5.8; else the xattr form.
    assert!(
        (m.file_type().is_char_device() && m.rdev() == 0)
            || getxattr(&wh, "user.overlay.whiteout").is_some(),
        "{m:?}"
    );
    assert_eq!(
        getxattr(&layer.join("var"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!layer.join("dev/console").exists());
    assert_eq!(fs::read(layer.join("tmp-x")).unwrap(), b"inside");
    assert!(!Path::new("/tmp-x").exists());
}
