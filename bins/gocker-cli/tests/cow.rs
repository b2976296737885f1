//! Copy-on-write roots (issue 15): every `gocker run --rootfs R` runs on an overlayfs whose lower
//! layer is R, and nothing a container does — `--rm` or not, `--read-only`, with volumes at new
//! mount points, a failed command, a monitor killed with SIGKILL — changes R's tree, which each
//! test compares byte for byte before and after. `gocker rootfs build --dest` never deletes what
//! gocker did not create. Run as root and as the unprivileged test users (`cargo xtask itest`).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use sha2::{Digest, Sha256};

/// `GOCKER_TEST_MODE`: `root`, `rootless-subuid` or `rootless-single` (one id mapped: no chown
/// to other ids inside).
fn mode() -> String {
    std::env::var("GOCKER_TEST_MODE").unwrap_or_else(|_| {
        if rustix::process::geteuid().is_root() {
            "root".into()
        } else {
            "rootless-subuid".into()
        }
    })
}

fn single_id() -> bool {
    mode() == "rootless-single"
}

/// The first subordinate id of the calling user in `file` (`NAME:START:COUNT`).
fn subid_start(file: &str) -> u32 {
    let o = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let name = text(&o.stdout).trim().to_owned();
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name.as_str())).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {file} range for {name}"))
}

/// A small copy of the test rootfs of this test's own (busybox, its libraries and /etc; owned by
/// the caller when rootless, by host root as root), removed on drop.
struct Rootfs(PathBuf);

impl Rootfs {
    fn new(tag: &str) -> Rootfs {
        let src = rootfs_path();
        let dir = std::env::temp_dir().join(unique(&format!("gocker-cow-{tag}")));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = Rootfs(dir);
        let parts: Vec<PathBuf> = ["bin", "sbin", "lib", "usr", "etc", "root", "home"]
            .iter()
            .map(|p| src.join(p))
            .filter(|p| p.symlink_metadata().is_ok())
            .collect();
        // Rootless, parts of the shared test rootfs may be unreadable (its /root): those are
        // left out; what was copied is what the snapshots compare.
        let _ = std::process::Command::new("cp")
            .arg("-a")
            .args(&parts)
            .arg(&r.0)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("cp");
        assert!(r.0.join("bin/sh").exists(), "copy of {}", src.display());
        for (d, m) in [
            ("dev", 0o755),
            ("proc", 0o555),
            ("sys", 0o555),
            ("tmp", 0o1777),
        ] {
            let p = r.0.join(d);
            let _ = std::fs::create_dir(&p);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        if !r.0.join("bin/vi").exists() {
            std::os::unix::fs::symlink("busybox", r.0.join("bin/vi")).unwrap();
        }
        r
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything about one path of a tree: type, mode, owner, size, times, link target, xattrs and
/// a hash of the content.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    owner: (u32, u32),
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    nlink: u64,
    target: Option<PathBuf>,
    xattrs: Vec<(String, Vec<u8>)>,
    sha256: Option<String>,
}

fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(p, &mut names) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut v = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, name.as_str(), &mut v).unwrap_or(0);
        v.truncate(len);
        out.push((name, v));
    }
    out.sort();
    out
}

/// The tree at `root` (not following symlinks), by path relative to it ("" is `root` itself).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            "special"
        };
        let sha256 = ft.is_file().then(|| match std::fs::read(&p) {
            Ok(b) => format!("{:x}", Sha256::digest(&b)),
            Err(e) => format!("unreadable: {e}"),
        });
        let e = Entry {
            kind,
            mode: m.mode(),
            owner: (m.uid(), m.gid()),
            size: if ft.is_dir() { 0 } else { m.size() },
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            nlink: m.nlink(),
            target: ft.is_symlink().then(|| std::fs::read_link(&p).unwrap()),
            xattrs: xattrs(&p),
            sha256,
        };
        if ft.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                todo.extend(rd.flatten().map(|d| d.path()));
            }
        }
        out.insert(p.strip_prefix(root).unwrap().to_owned(), e);
    }
    out
}

/// Asserts that the tree at `root` is the one of `before`, naming every difference.
#[track_caller]
fn assert_same_tree(root: &Path, before: &BTreeMap<PathBuf, Entry>) {
    let after = snapshot(root);
    let mut diffs = Vec::new();
    for (p, e) in before {
        match after.get(p) {
            None => diffs.push(format!("removed: {}", p.display())),
            Some(a) if a != e => diffs.push(format!("changed: {}: {e:?} -> {a:?}", p.display())),
            _ => {}
        }
    }
    for p in after.keys().filter(|p| !before.contains_key(*p)) {
        diffs.push(format!("created: {}", p.display()));
    }
    assert!(
        diffs.is_empty(),
        "{} changed:\n{}",
        root.display(),
        diffs.join("\n")
    );
}

/// The container directories in the state store whose configuration names `rootfs`.
fn state_dirs_for(rootfs: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(state_dir()) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path())
        .filter(|d| d.file_name().is_some_and(|n| n != "names"))
        .filter(|d| {
            ["config.json", "state.json"]
                .iter()
                .any(|f| std::fs::read_to_string(d.join(f)).is_ok_and(|t| t.contains(rootfs)))
        })
        .collect()
}

fn run_rm(r: &Rootfs, extra: &[&str], cmd: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--rm", "--network", "none", "--rootfs", r.path()];
    args.extend_from_slice(extra);
    args.extend_from_slice(cmd);
    g(&args)
}

#[test]
fn a_file_removed_by_a_rm_container_is_there_for_the_next_one() {
    let r = Rootfs::new("rm");
    let before = snapshot(&r.0);
    // The removal happens, inside: the first container no longer sees the file.
    ok(&run_rm(
        &r,
        &[],
        &[
            "sh",
            "-c",
            "rm -f /bin/vi && test ! -e /bin/vi && echo gone",
        ],
    ));
    let o = run_rm(&r, &[], &["ls", "/bin/vi"]);
    assert_eq!(ok(&o).trim(), "/bin/vi");
    // Writes of every kind, all thrown away.
    ok(&run_rm(
        &r,
        &[],
        &[
            "sh",
            "-c",
            "echo x >> /etc/passwd && mkdir -p /new/dir && echo y > /new/dir/f && \
             chmod 4755 /bin/busybox && ln -s /etc /new/link && rm -rf /usr && \
             touch /etc/hostname.new && test ! -e /usr",
        ],
    ));
    assert_same_tree(&r.0, &before);
    assert!(state_dirs_for(r.path()).is_empty());
}

#[test]
fn a_read_only_run_creates_nothing_in_the_rootfs() {
    let r = Rootfs::new("ro");
    let vol = tempfile::tempdir().unwrap();
    let v = format!("{}:/newmnt", vol.path().display());
    let before = snapshot(&r.0);
    // The mount point and the working directory exist inside; the root itself is read-only.
    let o = run_rm(
        &r,
        &["--read-only", "-v", &v, "-w", "/newwork"],
        &[
            "sh",
            "-c",
            "test -d /newmnt && echo in > /newmnt/f && ! touch /x 2>/dev/null && \
             ! rm /bin/vi 2>/dev/null && grep -q ' / .* ro,' /proc/self/mountinfo && pwd",
        ],
    );
    assert_eq!(ok(&o).trim(), "/newwork");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("f")).unwrap(),
        "in\n"
    );
    assert!(!r.0.join("newmnt").exists() && !r.0.join("newwork").exists());
    assert_same_tree(&r.0, &before);
}

#[test]
fn a_volume_at_a_new_mount_point_creates_nothing_in_the_rootfs() {
    let r = Rootfs::new("vol");
    let vol = tempfile::tempdir().unwrap();
    let v = format!("{}:/new/deep/mnt", vol.path().display());
    let file = vol.path().join("hostfile");
    std::fs::write(&file, "host\n").unwrap();
    let fv = format!("{}:/etc/newfile", file.display());
    let before = snapshot(&r.0);
    let o = run_rm(
        &r,
        &["-v", &v, "-v", &fv, "-w", "/work"],
        &[
            "sh",
            "-c",
            "echo hi > /new/deep/mnt/f && cat /etc/newfile && pwd && ls -d /dev/null /proc/1 /sys/kernel",
        ],
    );
    let out = ok(&o);
    assert!(out.starts_with("host\n/work\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("f")).unwrap(),
        "hi\n"
    );
    assert_same_tree(&r.0, &before);
    // Again, as root with --no-idmap (the lower layer as it is, host root's files as nobody).
    let mut extra: Vec<&str> = vec!["-v", &v];
    if mode() == "root" {
        extra.push("--no-idmap");
    }
    ok(&run_rm(
        &r,
        &extra,
        &["sh", "-c", "test -d /new/deep/mnt && touch /y"],
    ));
    assert_same_tree(&r.0, &before);
}

#[test]
fn the_changes_of_a_container_survive_its_restart_with_their_owners() {
    let r = Rootfs::new("keep");
    let name = unique("cow-keep");
    let before = snapshot(&r.0);
    // First run: changes as root and (with more than one id mapped) as uid 1000. A second run
    // of the same command checks them and exits 42 when all are as they were left.
    let chown = if single_id() {
        ""
    } else {
        "chown -R 1000:1000 /home/u && su_check=1;"
    };
    let script = format!(
        "if [ -e /etc/gen ]; then \
           [ \"$(cat /etc/gen)\" = one ] && [ ! -e /bin/vi ] && [ -d /home/u ] && \
           [ \"$(stat -c %u:%g /etc/gen)\" = 0:0 ] && \
           {{ [ ! -e /home/u/.ids ] || [ \"$(stat -c %u:%g /home/u/f)\" = 1000:1000 ]; }} && exit 42; \
           exit 1; \
         fi; \
         echo one > /etc/gen && rm /bin/vi && mkdir -p /home/u && touch /home/u/f && \
         {chown} {{ [ -z \"$su_check\" ] || touch /home/u/.ids; }}"
    );
    let o = g(&[
        "run",
        "--name",
        &name,
        "--network",
        "none",
        "--rootfs",
        r.path(),
        "sh",
        "-c",
        &script,
    ]);
    ok(&o);
    assert_same_tree(&r.0, &before);
    let dirs = state_dirs_for(r.path());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let upper = dirs[0].join("upper");
    assert!(upper.join("etc/gen").is_file(), "{}", upper.display());
    // Stored with the container's mapped ids: root's as container root's host id, uid 1000's
    // as the host id that 1000 maps to.
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let (root_ids, uid1000) = match mode().as_str() {
        // The default remap starts at 1000000000.
        "root" => ((1_000_000_000, 1_000_000_000), Some(1_000_001_000)),
        // Container root is the user; 1..65536 are the user's /etc/subuid range.
        "rootless-subuid" => (me, Some(subid_start("/etc/subuid") + 999)),
        _ => (me, None),
    };
    let st = std::fs::metadata(upper.join("etc/gen")).unwrap();
    assert_eq!((st.uid(), st.gid()), root_ids);
    if let Some(u) = uid1000 {
        let st = std::fs::metadata(upper.join("home/u/f")).unwrap();
        assert_eq!(st.uid(), u);
    }
    ok(&g(&["start", &name]));
    let code = wait_for("the restarted container", Duration::from_secs(20), || {
        let o = g(&["wait", &name]);
        o.status.success().then(|| stdout(&o).trim().to_owned())
    });
    assert_eq!(
        code,
        "42",
        "the restart did not see its changes: {}",
        stdout(&g(&["logs", &name]))
    );
    assert_same_tree(&r.0, &before);
    // rm removes the upper too, with files of the container's other ids (rootless: the user's
    // subordinate ids, removed as the container's root).
    ok(&g(&["rm", &name]));
    assert!(!dirs[0].exists(), "{} left behind", dirs[0].display());
    assert!(state_dirs_for(r.path()).is_empty());
}

#[test]
fn a_failed_run_leaves_nothing_in_the_rootfs_nor_in_the_state_store() {
    let r = Rootfs::new("fail");
    let before = snapshot(&r.0);
    let o = run_rm(&r, &["-v", "/tmp:/newmnt"], &["/no/such/command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let name = unique("cow-fail");
    let o = g(&[
        "run",
        "--name",
        &name,
        "--network",
        "none",
        "--rootfs",
        r.path(),
        "-w",
        "/newwork",
        "/no/such/command",
    ]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(state_dir()
        .join("names")
        .join(&name)
        .symlink_metadata()
        .is_err());
    assert!(state_dirs_for(r.path()).is_empty());
    // A command that is not executable, and a gocker error after the state exists.
    ok(&run_rm(&r, &[], &["true"]));
    let o = run_rm(&r, &[], &["/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    let o = run_rm(&r, &["-v", "/no/such/source:/x"], &["true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(state_dirs_for(r.path()).is_empty());
    assert_same_tree(&r.0, &before);
}

#[test]
fn a_rm_container_whose_monitor_is_killed_leaves_nothing_behind() {
    let r = Rootfs::new("kill");
    let before = snapshot(&r.0);
    let name = unique("cow-kill");
    let chown = if single_id() {
        ""
    } else {
        "chown -R 1000:1000 /x && chmod 0500 /x/y &&"
    };
    let sig = tempfile::tempdir().unwrap();
    let v = format!("{}:/sig", sig.path().display());
    let script = format!("mkdir -p /x/y && touch /x/y/f && {chown} touch /sig/ready && sleep 100");
    let child = gocker(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "none",
        "--rootfs",
        r.path(),
        "-v",
        &v,
        "sh",
        "-c",
        &script,
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // SIGKILLed on every path, also when an assertion fails first.
    struct Monitor(std::process::Child);
    impl Drop for Monitor {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Monitor(child);
    wait_for("the container's changes", Duration::from_secs(20), || {
        sig.path().join("ready").exists().then_some(())
    });
    let dirs = state_dirs_for(r.path());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = dirs[0].clone();
    // A --rm container's upper layer is a tmpfs of its own: nothing of it is in the store.
    assert!(!dir.join("upper").exists() && !dir.join("work").exists());
    child.0.kill().unwrap();
    let _ = child.0.wait();
    // The rings die with their monitor; the next gocker collects the record and the upper.
    wait_for(
        "the stale container's collection",
        Duration::from_secs(20),
        || {
            let _ = g(&["ps", "-a"]);
            (!dir.exists()).then_some(())
        },
    );
    assert!(state_dir()
        .join("names")
        .join(&name)
        .symlink_metadata()
        .is_err());
    assert_same_tree(&r.0, &before);
}

#[test]
fn rootfs_build_refuses_a_non_empty_destination_and_touches_nothing_in_it() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("mine");
    std::fs::create_dir_all(dest.join("sub")).unwrap();
    std::fs::write(dest.join("precious.txt"), "keep me\n").unwrap();
    std::fs::write(dest.join("sub/data"), "more\n").unwrap();
    let before = snapshot(parent.path());
    let o = g(&[
        "rootfs",
        "build",
        "--offline",
        "--dest",
        dest.to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(dest.to_str().unwrap()) && err.contains("not empty"),
        "{err}"
    );
    // Nothing in it, nor beside it (no build directory left), changed.
    assert_same_tree(parent.path(), &before);
    // A file as the destination is refused too.
    let f = parent.path().join("file");
    std::fs::write(&f, "x").unwrap();
    let o = g(&[
        "rootfs",
        "build",
        "--offline",
        "--dest",
        f.to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "x");
}
