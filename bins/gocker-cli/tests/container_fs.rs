//! `gocker commit`, `cp`, `export`, `import` (docs/images.md, "Container files"), driven through
//! the gocker binary: as root, as the unprivileged test user `gocker-sub` (root phase), and as
//! the phase's own user in the rootless phases of `cargo xtask itest`.
//!
//! Every test leaves nothing behind: its containers (`rm -f`), images (`rmi -f`, then `image
//! prune -f`) and temporary directories go on drop, also after a failed assertion.

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `GOCKER_TEST_MODE=rootless-single`: one id mapped, so no chown inside the container.
fn single_id(who: Who<'_>) -> bool {
    matches!(who, Who::Me)
        && std::env::var("GOCKER_TEST_MODE").is_ok_and(|m| m == "rootless-single")
}

/// Who runs gocker: this process's user, or (as root) the unprivileged test user.
#[derive(Clone, Copy)]
enum Who<'a> {
    Me,
    User(&'a TestUser),
}

impl Who<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        match self {
            Who::Me => gocker(args),
            Who::User(u) => u.gocker(args, &[]),
        }
    }
    fn g(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn gocker")
    }
    fn g_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ch = c.spawn().expect("spawn gocker");
        ch.stdin.take().unwrap().write_all(input).unwrap();
        ch.wait_with_output().unwrap()
    }
    /// `run --rm ROOTFS-or-IMAGE sh -c SCRIPT`, its stdout.
    fn sh_in(&self, container: &str, script: &str) -> String {
        ok(&self.g(&["exec", container, "sh", "-c", script]))
    }
    fn rootless(&self) -> bool {
        matches!(self, Who::User(_)) || !is_root()
    }
}

/// What a test made: removed on drop.
struct Scratch<'a> {
    who: Who<'a>,
    dir: PathBuf,
    containers: Vec<String>,
    images: Vec<String>,
}

impl<'a> Scratch<'a> {
    fn new(who: Who<'a>, tag: &str) -> Scratch<'a> {
        let dir = std::env::temp_dir().join(unique(&format!("gocker-cfs-{tag}")));
        fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        if let Who::User(u) = who {
            chown(&dir, u);
        }
        Scratch {
            who,
            dir,
            containers: Vec::new(),
            images: Vec::new(),
        }
    }

    /// A rootfs for the runs: the test rootfs itself as root; for an unprivileged user a copy
    /// of their own (a lower layer owned by host root is `nobody`'s in their containers, so
    /// `rm /bin/vi` would be refused).
    fn rootfs(&self) -> String {
        if !self.who.rootless() {
            return rootfs();
        }
        let dst = self.dir.join("rootfs");
        // Unreadable parts (root's 0700 /root) are left out: cp's status is not the point.
        let _ = Command::new("cp")
            .arg("-a")
            .arg(rootfs_path())
            .arg(&dst)
            .stderr(Stdio::null())
            .status();
        if let Who::User(u) = self.who {
            let st = Command::new("chown")
                .args(["-R", &format!("{}:{}", u.uid, u.gid)])
                .arg(&dst)
                .status()
                .unwrap();
            assert!(st.success());
        }
        assert!(dst.join("bin/sh").exists(), "copy of the rootfs");
        dst.display().to_string()
    }

    fn name(&mut self, tag: &str) -> String {
        let n = unique(&format!("cfs-{tag}"));
        self.containers.push(n.clone());
        n
    }

    fn image(&mut self, tag: &str) -> String {
        let n = format!("localhost/{}:1", unique(&format!("cfs-{tag}")));
        self.images.push(n.clone());
        n
    }

    fn host_file(&self, name: &str, data: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::write(&p, data).unwrap();
        if let Who::User(u) = self.who {
            chown(&p, u);
        }
        p
    }

    fn host_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::create_dir_all(&p).unwrap();
        if let Who::User(u) = self.who {
            chown(&p, u);
        }
        p
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.who.g(&["rm", "-f", c]);
        }
        for i in &self.images {
            let _ = self.who.g(&["rmi", "-f", i]);
        }
        if !self.images.is_empty() {
            let _ = self.who.g(&["image", "prune", "-f"]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn chown(p: &Path, u: &TestUser) {
    rustix::fs::chown(
        p,
        Some(rustix::fs::Uid::from_raw(u.uid)),
        Some(rustix::fs::Gid::from_raw(u.gid)),
    )
    .unwrap();
}

/// Fails unless gocker exited with `code` and stderr contains every needle.
#[track_caller]
fn fails(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {} stderr: {err}",
        stdout(o)
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    err
}

fn sha(p: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(fs::read(p).unwrap()))
}

/// Entries of a tar (plain or gzip): (path, kind, size, uid, gid).
fn tar_entries(data: &[u8]) -> Vec<(String, tar::EntryType, u64, u64, u64)> {
    let mut plain = Vec::new();
    if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut plain)
            .unwrap();
    } else {
        plain = data.to_vec();
    }
    let mut a = tar::Archive::new(&plain[..]);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes())
                    .trim_end_matches('/')
                    .trim_start_matches("./")
                    .to_string(),
                h.entry_type(),
                h.size().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
            )
        })
        .collect()
}

/// The layers (gzip blobs, lowest first) of `image`, read from `gocker save`'s OCI layout.
fn saved_layers(who: Who<'_>, image: &str) -> Vec<Vec<u8>> {
    let o = who.g(&["save", image]);
    let tarball = o.stdout.clone();
    ok(&o);
    let mut files = std::collections::HashMap::new();
    let mut a = tar::Archive::new(&tarball[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        files.insert(p, b);
    }
    let blob =
        |d: &str| files[&format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))].clone();
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// commit

fn commit_then_run(who: Who<'_>) {
    let mut s = Scratch::new(who, "commit");
    let r = s.rootfs();
    let vi_before = fs::symlink_metadata(Path::new(&r).join("bin/vi")).is_ok();
    assert!(vi_before, "the rootfs has /bin/vi");
    let c = s.name("c");
    let img = s.image("img");
    ok(&who.g(&[
        "run",
        "--name",
        &c,
        "--rootfs",
        &r,
        "sh",
        "-c",
        "echo hi >/new; rm /bin/vi",
    ]));
    let o = who.g(&[
        "commit",
        "-m",
        "first commit",
        "-a",
        "Tester <t@example.com>",
        "-c",
        "ENV FOO=bar",
        "-c",
        "WORKDIR /srv",
        &c,
        &img,
    ]);
    let id = ok(&o).trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "commit prints the id: {id}"
    );
    // The base is untouched, the image has the change.
    assert!(
        Path::new(&r).join("bin/vi").exists(),
        "the rootfs keeps /bin/vi"
    );
    let out = ok(&who.g(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "cat /new; ! test -e /bin/vi && echo gone; echo $FOO; pwd",
    ]));
    assert_eq!(out, "hi\ngone\nbar\n/srv\n");
    // The layers: the --rootfs directory as the base, then the changes with an OCI whiteout,
    // container root's files as 0:0, and never overlayfs's work directory.
    let layers = saved_layers(who, &img);
    assert_eq!(layers.len(), 2, "base layer + changes");
    let base = tar_entries(&layers[0]);
    assert!(
        base.iter().any(|e| e.0 == "bin/busybox"),
        "base layer has the rootfs"
    );
    let top = tar_entries(&layers[1]);
    let names: Vec<&str> = top.iter().map(|e| e.0.as_str()).collect();
    assert!(names.contains(&"bin/.wh.vi"), "{names:?}");
    assert!(names.contains(&"new"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("work") || n.starts_with("upper")),
        "{names:?}"
    );
    let new = top.iter().find(|e| e.0 == "new").unwrap();
    assert_eq!(
        (new.1, new.2, new.3, new.4),
        (tar::EntryType::Regular, 3, 0, 0)
    );
    let h = ok(&who.g(&["history", "--no-trunc", &img]));
    assert!(h.contains("first commit"), "{h}");
    let inspect = ok(&who.g(&["image", "inspect", &img]));
    assert!(inspect.contains("Tester <t@example.com>"), "{inspect}");

    // A second commit on top of the committed image (its container records the image), of a
    // running container: an opaque directory and a file owned by another user.
    let c2 = s.name("c2");
    let img2 = s.image("img2");
    ok(&who.g(&[
        "run", "-d", "--name", &c2, &img, "sh", "-c",
        "rm -rf /var; mkdir /var; echo x >/var/only; echo u >/owned; chown 1000:1000 /owned 2>/dev/null; touch /ready; sleep 300",
    ]));
    wait_for(
        "the container's script",
        std::time::Duration::from_secs(20),
        || {
            who.g(&["exec", &c2, "test", "-e", "/ready"])
                .status
                .success()
                .then_some(())
        },
    );
    let id2 = ok(&who.g(&["commit", &c2, &img2])).trim().to_string();
    assert_ne!(id2, id);
    // Rootless, `run` of a three-layer image from the user's store is refused by the run path
    // today (its overlayfs `lowerdir` list passes fsconfig's 256-byte limit: a root-path bug of
    // the copy-on-write roots, not of commit); the layers are checked below in every mode.
    if !who.rootless() {
        let out = ok(&who.g(&[
            "run",
            "--rm",
            &img2,
            "sh",
            "-c",
            "test -e /var/only && ! test -e /var/log && echo opaque; cat /new /owned",
        ]));
        assert_eq!(out, "opaque\nhi\nu\n", "opaque /var over the image's");
    }
    let layers = saved_layers(who, &img2);
    assert_eq!(layers.len(), 3, "the parent's two layers + one");
    let top = tar_entries(&layers[2]);
    assert!(top.iter().any(|e| e.0 == "var/.wh..wh..opq"), "{top:?}");
    let owned = top
        .iter()
        .find(|e| e.0 == "owned")
        .expect("owned in the layer");
    if !single_id(who) {
        assert_eq!((owned.3, owned.4), (1000, 1000), "container ids kept");
    }
    ok(&who.g(&["rm", "-f", &c2]));
}

#[test]
fn commit_turns_the_changes_into_a_layer_and_run_sees_them() {
    commit_then_run(Who::Me);
}

#[test]
fn commit_as_an_unprivileged_user() {
    if !is_root() {
        return; // the rootless phases run the test above as their own user
    }
    let u = TestUser::get("gocker-sub");
    commit_then_run(Who::User(&u));
}

// ---------------------------------------------------------------------------------------------
// cp

fn cp_both_ways(who: Who<'_>, running: bool) {
    let mut s = Scratch::new(who, "cp");
    let r = s.rootfs();
    let c = s.name("c");
    let script = if single_id(who) {
        "mkdir -p /data/sub; echo one >/data/a; echo two >/data/sub/b"
    } else {
        "mkdir -p /data/sub; echo one >/data/a; echo two >/data/sub/b; chown 1000:1000 /data/a"
    };
    let ids = if single_id(who) { (0, 0) } else { (1000, 1000) };
    if running {
        ok(&who.g(&[
            "run",
            "-d",
            "--name",
            &c,
            "--rootfs",
            &r,
            "sh",
            "-c",
            &format!("{script}; touch /ready; sleep 300"),
        ]));
        wait_for(
            "the container's script",
            std::time::Duration::from_secs(20),
            || {
                who.g(&["exec", &c, "test", "-e", "/ready"])
                    .status
                    .success()
                    .then_some(())
            },
        );
    } else {
        ok(&who.g(&["run", "--name", &c, "--rootfs", &r, "sh", "-c", script]));
    }
    // Container → host: a file into a directory, a file to a new name, a directory.
    let out = s.host_dir("out");
    let od = out.display().to_string();
    ok(&who.g(&["cp", &format!("{c}:/data/a"), &format!("{od}/")]));
    assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "one\n");
    ok(&who.g(&["cp", &format!("{c}:/data/sub/b"), &format!("{od}/renamed")]));
    assert_eq!(fs::read_to_string(out.join("renamed")).unwrap(), "two\n");
    ok(&who.g(&["cp", &format!("{c}:/data"), &format!("{od}/tree")]));
    assert_eq!(fs::read_to_string(out.join("tree/sub/b")).unwrap(), "two\n");
    ok(&who.g(&["cp", &format!("{c}:/data/."), &format!("{od}/tree")]));
    assert_eq!(fs::read_to_string(out.join("tree/a")).unwrap(), "one\n");
    // `-`: a tar on stdout, with the container's ids.
    let o = who.g(&["cp", &format!("{c}:/data"), "-"]);
    let tarball = o.stdout.clone();
    ok(&o);
    let e = tar_entries(&tarball);
    let a = e
        .iter()
        .find(|x| x.0 == "data/a")
        .expect("data/a in the tar");
    assert_eq!((a.2, a.3, a.4), (4, ids.0, ids.1), "{e:?}");
    // Host → container: a file, a directory, a tar from stdin; root's by default, -a keeps ids.
    let f = s.host_file("hostfile", "from the host\n");
    ok(&who.g(&["cp", &f.display().to_string(), &format!("{c}:/data/")]));
    let tree = s.host_dir("srcdir");
    fs::write(tree.join("inner"), "inner\n").unwrap();
    if let Who::User(u) = who {
        chown(&tree.join("inner"), u);
    }
    ok(&who.g(&[
        "cp",
        &tree.display().to_string(),
        &format!("{c}:/data/newdir"),
    ]));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o640);
    h.set_mtime(1_700_000_000);
    h.set_uid(1234);
    h.set_gid(1234);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "streamed", &b"tar!\n\n"[..]).unwrap();
    let streamed = b.into_inner().unwrap();
    ok(&who.g_stdin(&["cp", "-", &format!("{c}:/data")], &streamed));
    let archived = if single_id(who) { 0 } else { 1234 };
    if archived != 0 {
        ok(&who.g_stdin(&["cp", "-a", "-", &format!("{c}:/data/sub")], &streamed));
    } else {
        ok(&who.g_stdin(&["cp", "-", &format!("{c}:/data/sub")], &streamed));
    }
    let want =
        format!("from the host\ninner\ntar!\n\n0:0 644\n0:0 640\n{archived}:{archived} 640\n");
    let check = "cat /data/hostfile /data/newdir/inner /data/streamed; stat -c '%u:%g %a' /data/hostfile /data/streamed /data/sub/streamed";
    if running {
        assert_eq!(who.sh_in(&c, check), want, "contents and owners inside");
    } else {
        // What the stopped container holds, read back as a tar (the container's ids).
        let o = who.g(&["cp", &format!("{c}:/data"), "-"]);
        let tarball = o.stdout.clone();
        ok(&o);
        let e = tar_entries(&tarball);
        let get = |n: &str| {
            e.iter()
                .find(|x| x.0 == n)
                .unwrap_or_else(|| panic!("{n} in {e:?}"))
        };
        assert_eq!(get("data/hostfile").2, 14);
        assert_eq!(get("data/newdir/inner").2, 6);
        assert_eq!((get("data/streamed").3, get("data/streamed").4), (0, 0));
        assert_eq!(get("data/sub/streamed").3, archived as u64);
        // And what it sees once started again (it runs its command once more, then stops).
        let img = s.image("cp");
        ok(&who.g(&["commit", &c, &img]));
        let out = ok(&who.g(&[
            "run",
            "--rm",
            &img,
            "sh",
            "-c",
            "cat /data/hostfile /data/newdir/inner /data/streamed",
        ]));
        assert_eq!(out, "from the host\ninner\ntar!\n\n");
    }
    ok(&who.g(&["rm", "-f", &c]));
}

#[test]
fn cp_both_ways_with_a_stopped_container() {
    cp_both_ways(Who::Me, false);
}

#[test]
fn cp_both_ways_with_a_running_container() {
    cp_both_ways(Who::Me, true);
}

#[test]
fn cp_both_ways_as_an_unprivileged_user() {
    if !is_root() {
        return;
    }
    let u = TestUser::get("gocker-sub");
    cp_both_ways(Who::User(&u), false);
    cp_both_ways(Who::User(&u), true);
}

/// Symlinks planted in the container: `/cfs-evil` → a host directory of the test (absolute), `/tmp/cfs-x`
/// → `/../../../etc/passwd`, `/cfs-up` → `../../../../..` + that host directory. Nothing may read or
/// write the host's files through them, in either direction.
fn cp_escapes(who: Who<'_>, running: bool) {
    let mut s = Scratch::new(who, "escape");
    let r = s.rootfs();
    let c = s.name("c");
    let host = s.host_dir("hostside");
    let secret = s.host_file("hostside/secret", "host secret\n");
    let hp = host.display().to_string();
    let passwd_before = sha("/etc/passwd".as_ref());
    let script = format!(
        "ln -sfn {hp} /cfs-evil; ln -sfn /../../../etc/passwd /tmp/cfs-x; ln -sfn ../../../../../..{hp} /cfs-up; echo inside >/etc/cfs-marker"
    );
    if running {
        ok(&who.g(&[
            "run",
            "-d",
            "--name",
            &c,
            "--rootfs",
            &r,
            "sh",
            "-c",
            &format!("{script}; touch /ready; sleep 300"),
        ]));
        wait_for(
            "the container's script",
            std::time::Duration::from_secs(20),
            || {
                who.g(&["exec", &c, "test", "-e", "/ready"])
                    .status
                    .success()
                    .then_some(())
            },
        );
    } else {
        ok(&who.g(&["run", "--name", &c, "--rootfs", &r, "sh", "-c", &script]));
    }
    let out = s.host_dir("out");
    let od = out.display().to_string();
    // Reading through the links: the container has no such host directory.
    for src in [
        "/cfs-evil/secret".to_string(),
        "/cfs-up/secret".to_string(),
        format!("../../../../..{hp}/secret"),
    ] {
        let o = who.g(&["cp", &format!("{c}:{src}"), &format!("{od}/got")]);
        fails(&o, 125, &["gocker: cp:", &c]);
        assert!(!out.join("got").exists(), "{src}: nothing copied");
        let o = who.g(&["cp", "-L", &format!("{c}:{src}"), &format!("{od}/got")]);
        assert_eq!(o.status.code(), Some(125), "{src} -L: {}", stderr(&o));
    }
    // -L on /tmp/cfs-x gives the container's passwd, never the host's.
    ok(&who.g(&[
        "cp",
        "-L",
        &format!("{c}:/tmp/cfs-x"),
        &format!("{od}/passwd"),
    ]));
    let rootfs_passwd = fs::read(Path::new(&r).join("etc/passwd")).unwrap();
    assert_eq!(fs::read(out.join("passwd")).unwrap(), rootfs_passwd);
    // Without -L the link itself is copied.
    ok(&who.g(&["cp", &format!("{c}:/tmp/cfs-x"), &format!("{od}/link")]));
    assert_eq!(
        fs::read_link(out.join("link")).unwrap(),
        PathBuf::from("/../../../etc/passwd")
    );
    // Writing through the links: the host directory and /etc/passwd stay as they were.
    let f = s.host_file("payload", "payload\n");
    let fp = f.display().to_string();
    for dst in ["/cfs-evil/", "/cfs-evil/new", "/cfs-up/new", "/tmp/cfs-x"] {
        let o = who.g(&["cp", &fp, &format!("{c}:{dst}")]);
        let _ = o.status.code(); // an error, or a write confined to the container: both fine
    }
    let o = who.g(&["cp", &fp, &format!("{c}:../../../../..{hp}/dotdot")]);
    fails(&o, 125, &[&c]);
    // `..` past the root stays at the root: this lands in the container's /tmp.
    let dotdot = unique("gocker-cfs-dotdot");
    ok(&who.g(&["cp", &fp, &format!("{c}:../../../../../tmp/{dotdot}")]));
    assert!(!Path::new("/tmp").join(&dotdot).exists(), "not on the host");
    let mut names: Vec<String> = fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["secret"], "nothing written into the host directory");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret\n");
    assert_eq!(
        sha("/etc/passwd".as_ref()),
        passwd_before,
        "host /etc/passwd unchanged"
    );
    assert!(!Path::new("/etc/cfs-marker").exists() && !Path::new("/etc/new").exists());
    // The `..` write landed inside the container, /tmp/cfs-x replaced inside it.
    let check = format!("cat /tmp/{dotdot}; test -L /tmp/cfs-x || cat /tmp/cfs-x");
    let seen = if running {
        who.sh_in(&c, &check)
    } else {
        let img = s.image("esc");
        ok(&who.g(&["commit", &c, &img]));
        ok(&who.g(&["run", "--rm", &img, "sh", "-c", &check]))
    };
    assert_eq!(seen, "payload\npayload\n");
    ok(&who.g(&["rm", "-f", &c]));
}

#[test]
fn cp_cannot_escape_through_symlinks_of_a_stopped_container() {
    cp_escapes(Who::Me, false);
}

#[test]
fn cp_cannot_escape_through_symlinks_of_a_running_container() {
    cp_escapes(Who::Me, true);
}

#[test]
fn cp_cannot_escape_as_an_unprivileged_user() {
    if !is_root() {
        return;
    }
    let u = TestUser::get("gocker-sub");
    cp_escapes(Who::User(&u), false);
    cp_escapes(Who::User(&u), true);
}

#[test]
fn cp_usage_errors_exit_125_naming_the_problem() {
    fails(
        &g(&["cp", "/tmp/a", "/tmp/b"]),
        125,
        &["at least one container"],
    );
    fails(&g(&["cp", "x:/a", "y:/b"]), 125, &["between containers"]);
    let n = unique("cfs-nope");
    fails(
        &g(&["cp", &format!("{n}:/a"), "/tmp/"]),
        125,
        &["No such container", &n],
    );
    fails(&g(&["commit", &n]), 125, &["No such container"]);
    fails(
        &g(&["export", "-o", "/dev/null", &n]),
        125,
        &["No such container"],
    );
}

// ---------------------------------------------------------------------------------------------
// export, import

fn export_import(who: Who<'_>) {
    let mut s = Scratch::new(who, "export");
    let r = s.rootfs();
    let c = s.name("c");
    ok(&who.g(&[
        "run",
        "--name",
        &c,
        "--rootfs",
        &r,
        "sh",
        "-c",
        "echo e >/exported; rm /bin/vi; ln -s /exported /lnk",
    ]));
    let tarfile = s.dir.join("c.tar");
    ok(&who.g(&["export", "-o", &tarfile.display().to_string(), &c]));
    if let Who::User(_) = who {
        // The file is the user's.
        use std::os::unix::fs::MetadataExt;
        assert_ne!(fs::metadata(&tarfile).unwrap().uid(), 0);
    }
    let first = tar_entries(&fs::read(&tarfile).unwrap());
    let names: std::collections::BTreeSet<String> = first.iter().map(|e| e.0.clone()).collect();
    assert!(names.contains("exported") && names.contains("lnk") && names.contains("bin/sh"));
    assert!(
        !names.contains("bin/vi"),
        "the merged root: /bin/vi was removed"
    );
    assert!(
        !names.iter().any(|n| n.contains(".wh.")),
        "no whiteouts in an export"
    );
    // stdout gives the same tar.
    let o = who.g(&["export", &c]);
    ok(&o);
    assert_eq!(tar_entries(&o.stdout).len(), first.len());
    // import → a single-layer image with the same file set.
    let img = s.image("imp");
    let id = ok(&who.g(&[
        "import",
        "-m",
        "imported",
        "-c",
        "CMD [\"/bin/sh\"]",
        &tarfile.display().to_string(),
        &img,
    ]));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let layers = saved_layers(who, &img);
    assert_eq!(layers.len(), 1);
    let key =
        |e: &(String, tar::EntryType, u64, u64, u64)| (e.0.clone(), e.1.as_byte(), e.2, e.3, e.4);
    let mut a: Vec<_> = first.iter().map(key).collect();
    let mut b: Vec<_> = tar_entries(&layers[0]).iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the imported layer holds exactly the exported files");
    // The same through stdin, and the image runs.
    let img2 = s.image("imp2");
    ok(&who.g_stdin(&["import", "-", &img2], &fs::read(&tarfile).unwrap()));
    let out = ok(&who.g(&[
        "run",
        "--rm",
        &img2,
        "sh",
        "-c",
        "cat /lnk; test -e /bin/vi || echo novi",
    ]));
    assert_eq!(out, "e\nnovi\n");
    // A running container exports too (its mounts, /proc included, as empty directories).
    let c2 = s.name("c2");
    ok(&who.g(&["run", "-d", "--name", &c2, &img2, "sleep", "300"]));
    let o = who.g(&["export", &c2]);
    ok(&o);
    let e = tar_entries(&o.stdout);
    assert!(e.iter().any(|x| x.0 == "exported"));
    assert!(
        !e.iter().any(|x| x.0.starts_with("proc/") && x.0 != "proc/"),
        "no /proc contents"
    );
    ok(&who.g(&["rm", "-f", &c2]));
}

#[test]
fn export_then_import_gives_the_same_file_set() {
    export_import(Who::Me);
}

#[test]
fn export_then_import_as_an_unprivileged_user() {
    if !is_root() {
        return;
    }
    let u = TestUser::get("gocker-sub");
    export_import(Who::User(&u));
}

/// An entry with a path the tar crate would refuse to write (`..` components).
fn raw_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.as_mut_bytes()[..100].fill(0);
    h.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn import_refuses_a_tar_with_dotdot_entries_naming_the_entry() {
    let s = Scratch::new(Who::Me, "hostile");
    let victim = format!("gocker-cfs-victim-{}", std::process::id());
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "ok", &b"ok\n"[..]).unwrap();
    let evil = format!("../../../../../../../tmp/{victim}");
    raw_file(&mut b, &evil, b"pwned\n");
    let data = b.into_inner().unwrap();
    let f = s.host_file("evil.tar", "");
    fs::write(&f, &data).unwrap();
    let before = ok(&g(&["images", "-q", "--no-trunc"]));
    let name = format!("localhost/{}:1", unique("cfs-hostile"));
    let o = g(&["import", &f.display().to_string(), &name]);
    fails(&o, 125, &["gocker: import:", &evil, "refused"]);
    let o = gocker(&["import", "-", &name])
        .stdin(fs::File::open(&f).unwrap())
        .output()
        .unwrap();
    fails(&o, 125, &[&evil]);
    assert!(
        !Path::new("/tmp").join(&victim).exists(),
        "nothing written outside the store"
    );
    // No image of ours, named or dangling: what is new since `before` was made by the tests
    // running beside this one (which name theirs).
    let after = ok(&g(&["images", "-q", "--no-trunc"]));
    for id in after.lines().filter(|id| !before.lines().any(|b| b == *id)) {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&g(&["image", "inspect", id]))).unwrap();
        let tags = v[0]["RepoTags"].as_array().cloned().unwrap_or_default();
        assert!(
            !tags.is_empty() && !tags.iter().any(|t| t.as_str() == Some(name.as_str())),
            "an image left by the refused import: {id} {tags:?}"
        );
    }
}
