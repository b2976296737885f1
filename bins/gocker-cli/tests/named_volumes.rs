//! Named volumes (`gocker volume ...`, `run -v NAME:/dst`) against the real kernel, as root and
//! as the unprivileged users (GOCKER_TEST_MODE). Every check looks at what really happened: the
//! volume directory on the host, what a second container sees, what is left after a refusal.

mod common;
use common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The volume store of the user running the tests (as gocker computes it).
fn volumes_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/gocker/volumes");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".local/share"));
    data.join("gocker/volumes")
}

fn data_dir(name: &str) -> PathBuf {
    volumes_dir().join(name).join("_data")
}

/// Volumes a test uses: removed (`volume rm -f`) when the test ends, also after a failure.
/// Containers named through `g` are removed first by the common helpers' thread guard only at
/// thread end, so `Vols` removes the containers it was told about before the volumes.
struct Vols {
    names: Vec<String>,
    containers: Vec<String>,
}

impl Vols {
    fn new(tag: &str, n: usize) -> Vols {
        Vols {
            names: (0..n).map(|i| unique(&format!("{tag}{i}"))).collect(),
            containers: Vec::new(),
        }
    }
    fn container(&mut self, tag: &str) -> String {
        let c = unique(tag);
        self.containers.push(c.clone());
        c
    }
}

impl Drop for Vols {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let mut a = vec!["rm", "-f"];
            a.extend(self.containers.iter().map(String::as_str));
            let _ = gocker(&a)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let mut a = vec!["volume", "rm", "-f"];
        a.extend(self.names.iter().map(String::as_str));
        let _ = gocker(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A private copy of the test rootfs in a directory of its own (removed on drop).
struct Work(PathBuf);

impl Work {
    fn new(tag: &str) -> Work {
        let d = std::env::temp_dir().join(format!("gocker-nvol-{}", unique(tag)));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        // As an unprivileged user cp cannot read the rootfs's /root (0700): the rest matters.
        let _ = std::process::Command::new("cp")
            .arg("-a")
            .arg(rootfs_path())
            .arg(d.join("rootfs"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            d.join("rootfs/bin/sh").exists(),
            "copy of the rootfs failed"
        );
        Work(d)
    }
    fn root(&self) -> PathBuf {
        self.0.join("rootfs")
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_in(root: &Path, extra: &[&str], script: &str) -> std::process::Output {
    let r = root.display().to_string();
    let mut args = vec!["run", "--rm", "--network", "none", "--rootfs", r.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["/bin/sh", "-c", script]);
    g(&args)
}

fn volume_listed(name: &str) -> bool {
    let o = g(&["volume", "ls", "-q"]);
    ok(&o).lines().any(|l| l == name)
}

/// `GOCKER_TEST_MODE=rootless-single`: one id mapped, so no chown inside the container.
fn single_id() -> bool {
    std::env::var("GOCKER_TEST_MODE").is_ok_and(|m| m == "rootless-single")
}

fn am_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Every path below `dir` (not following symlinks).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            walk(&p, out);
        }
    }
}

#[test]
fn copy_up_fills_an_empty_volume_and_a_second_container_sees_the_data() {
    let mut v = Vols::new("cu", 1);
    let name = v.names[0].clone();
    let w = Work::new("cu");
    let app = w.root().join("app");
    std::fs::create_dir_all(app.join("sub")).unwrap();
    std::fs::write(app.join("conf"), "from the image\n").unwrap();
    std::fs::set_permissions(app.join("conf"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(app.join("sub/deep"), "deep\n").unwrap();
    std::fs::set_permissions(app.join("sub"), std::fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::symlink("sub/deep", app.join("link")).unwrap();
    std::fs::hard_link(app.join("conf"), app.join("conf.hard")).unwrap();
    if am_root() {
        std::os::unix::fs::chown(app.join("sub/deep"), Some(1234), Some(4321)).unwrap();
    }
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o705)).unwrap();

    // A file of another owner than the container's root, given by a container (rootless: one
    // of the user's subordinate ids on the host; root: id 100 through the idmapped bind).
    std::fs::write(app.join("owned"), "o").unwrap();
    let owned = if single_id() {
        "0:0"
    } else {
        let bind = format!("{}:/h", app.display());
        let o = run_in(&w.root(), &["-v", &bind], "chown 100:101 /h/owned");
        ok(&o);
        "100:101"
    };

    let spec = format!("{name}:/app");
    // Not created beforehand: `-v NAME:/dst` creates it (docker does).
    assert!(!volume_listed(&name));
    let o = run_in(
        &w.root(),
        &["-v", &spec],
        "cat /app/conf /app/link; stat -c %a /app/conf; stat -c %u:%g /app/owned; echo written > /app/new",
    );
    // The copies keep the owners the container sees: rootless too (copied as root of a user
    // namespace with the container's maps).
    assert_eq!(
        stdout(&o),
        format!("from the image\ndeep\n640\n{owned}\n"),
        "{}",
        stderr(&o)
    );
    assert!(volume_listed(&name));

    // On the host: the copy, with modes, symlinks, the hard link and (root) owners.
    let d = data_dir(&name);
    assert_eq!(
        std::fs::read_to_string(d.join("conf")).unwrap(),
        "from the image\n"
    );
    let conf = std::fs::metadata(d.join("conf")).unwrap();
    assert_eq!(conf.mode() & 0o7777, 0o640);
    assert_eq!(
        std::fs::metadata(d.join("conf.hard")).unwrap().ino(),
        conf.ino(),
        "the hard link is a link in the volume too"
    );
    assert_eq!(
        std::fs::metadata(d.join("sub")).unwrap().mode() & 0o7777,
        0o751
    );
    assert_eq!(
        std::fs::read_link(d.join("link")).unwrap(),
        PathBuf::from("sub/deep")
    );
    assert_eq!(
        std::fs::metadata(&d).unwrap().mode() & 0o7777,
        0o705,
        "the volume root takes /app's mode"
    );
    let me = rustix::process::geteuid().as_raw();
    let deep = std::fs::metadata(d.join("sub/deep")).unwrap();
    if am_root() {
        assert_eq!((deep.uid(), deep.gid()), (1234, 4321));
    } else {
        // Rootless: the volume is the user's, and the user is the container's root.
        assert_eq!(deep.uid(), me);
        assert_eq!(std::fs::metadata(&d).unwrap().uid(), me);
    }
    assert_eq!(std::fs::read_to_string(d.join("new")).unwrap(), "written\n");
    assert_eq!(std::fs::metadata(d.join("new")).unwrap().uid(), me);

    // Not empty any more: nothing is copied again, and a later container sees the first's data.
    std::fs::write(app.join("later"), "x").unwrap();
    let c = v.container("cu");
    let o = g(&[
        "run",
        "--name",
        &c,
        "--network",
        "none",
        "--rootfs",
        &w.root().display().to_string(),
        "-v",
        &format!("{name}:/elsewhere:ro"),
        "/bin/sh",
        "-c",
        "cat /elsewhere/new; ls /elsewhere; echo x > /elsewhere/ro 2>/dev/null || echo refused",
    ]);
    let out = ok(&o);
    assert!(out.starts_with("written\n"), "{out}");
    assert!(!out.contains("later") && out.contains("refused"), "{out}");
    assert!(!d.join("later").exists() && !d.join("ro").exists());

    // The stopped container still uses the volume: rm refuses, naming it; -f does not help.
    for args in [
        vec!["volume", "rm", &name],
        vec!["volume", "rm", "-f", &name],
    ] {
        let o = g(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&c) && stderr(&o).contains(&name) && stderr(&o).contains("in use"),
            "{}",
            stderr(&o)
        );
        assert!(volume_listed(&name) && d.join("new").exists());
    }
    // `volume ls --filter dangling=...` agrees.
    let filt = format!("name={name}");
    assert_eq!(
        ok(&g(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &filt,
            "--filter",
            "dangling=false"
        ]))
        .trim(),
        name
    );
    assert_eq!(
        ok(&g(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &filt,
            "--filter",
            "dangling=true"
        ]))
        .trim(),
        ""
    );
    // Removing the container leaves the named volume; then the volume can go.
    ok(&g(&["rm", &c]));
    assert!(volume_listed(&name) && d.join("new").exists());
    assert_eq!(
        ok(&g(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &filt,
            "--filter",
            "dangling=true"
        ]))
        .trim(),
        name
    );
    assert_eq!(ok(&g(&["volume", "rm", &name])).trim(), name);
    assert!(!volume_listed(&name));
    assert!(!volumes_dir().join(&name).exists());
}

#[test]
fn a_running_container_keeps_its_volume() {
    let mut v = Vols::new("run", 1);
    let name = v.names[0].clone();
    let c = v.container("runc");
    let spec = format!("{name}:/data");
    let label = format!("gocker.test={}", unique("keep"));
    ok(&g(&["volume", "create", "--label", &label, &name]));
    let r = rootfs();
    let o = g(&[
        "run",
        "-d",
        "--name",
        &c,
        "--network",
        "none",
        "--rootfs",
        &r,
        "-v",
        &spec,
        "/bin/sh",
        "-c",
        "echo alive > /data/f; sleep 60",
    ]);
    ok(&o);
    wait_for(
        "the container's write",
        std::time::Duration::from_secs(20),
        || data_dir(&name).join("f").exists().then_some(()),
    );
    let o = g(&["volume", "rm", "-f", &name]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&c) && stderr(&o).contains("running"),
        "{}",
        stderr(&o)
    );
    // prune leaves it too (filtered by the test's label: other tests' volumes are not ours).
    let o = g(&[
        "volume",
        "prune",
        "-f",
        "--filter",
        &format!("label={label}"),
    ]);
    assert!(!stdout(&o).lines().any(|l| l == name), "{}", stdout(&o));
    assert!(volume_listed(&name));
    assert_eq!(
        std::fs::read_to_string(data_dir(&name).join("f")).unwrap(),
        "alive\n"
    );
    ok(&g(&["rm", "-f", &c]));
    ok(&g(&["volume", "rm", &name]));
    assert!(!volumes_dir().join(&name).exists());
}

#[test]
fn hostile_symlinks_at_the_destination_copy_nothing_from_the_host() {
    let v = Vols::new("evil", 3);
    let w = Work::new("evil");
    let root = w.root();
    // A host directory beside the rootfs, with a secret that no copy-up may take.
    let outside = w.0.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host secret").unwrap();
    let climb = format!("../../../../../../../..{}", outside.display());

    // 1. /dst is a symlink climbing out of the root to the host directory: resolved inside the
    //    root, where it does not exist: nothing copied (and the mount is refused).
    std::os::unix::fs::symlink(&climb, root.join("evil")).unwrap();
    let o = run_in(&root, &["-v", &format!("{}:/evil", v.names[0])], "ls /evil");
    let copied: Vec<PathBuf> = std::fs::read_dir(data_dir(&v.names[0]))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(copied.is_empty(), "copied {copied:?}; {}", stderr(&o));
    assert!(!stdout(&o).contains("secret"), "{}", stdout(&o));

    // 2. /dst reached through a symlink to / : the root's /etc, not the host's.
    std::os::unix::fs::symlink("/", root.join("slash")).unwrap();
    std::fs::write(root.join("etc/only-in-rootfs"), "r").unwrap();
    let o = run_in(
        &root,
        &["-v", &format!("{}:/slash/etc", v.names[1])],
        "cat /etc/only-in-rootfs",
    );
    assert_eq!(stdout(&o), "r", "{}", stderr(&o));
    let d = data_dir(&v.names[1]);
    assert!(d.join("only-in-rootfs").exists());
    assert!(
        !d.join("debian_version").exists() && !d.join("shadow").exists(),
        "host files were copied: {:?}",
        std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    );

    // 3. /dst holds symlinks that climb out (relative and absolute): copied as symlinks, never
    //    followed.
    let dir = root.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&climb, dir.join("up")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("abs")).unwrap();
    std::os::unix::fs::symlink("/", dir.join("root")).unwrap();
    std::fs::write(dir.join("plain"), "p").unwrap();
    let o = run_in(
        &root,
        &["-v", &format!("{}:/app", v.names[2])],
        "cat /app/plain",
    );
    assert_eq!(stdout(&o), "p", "{}", stderr(&o));
    let d = data_dir(&v.names[2]);
    for (l, t) in [
        ("up", PathBuf::from(&climb)),
        ("abs", outside.clone()),
        ("root", PathBuf::from("/")),
    ] {
        let md = std::fs::symlink_metadata(d.join(l)).unwrap();
        assert!(
            md.file_type().is_symlink(),
            "{l} is not a symlink in the volume"
        );
        assert_eq!(std::fs::read_link(d.join(l)).unwrap(), t);
    }
    let mut all = Vec::new();
    walk(&d, &mut all);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.iter().all(|p| p.file_name().unwrap() != "secret"));
    // The host directory is untouched.
    let host: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(host, vec![std::ffi::OsString::from("secret")]);
    drop(v);
}

#[test]
fn concurrent_creates_make_one_volume() {
    let v = Vols::new("race", 1);
    let name = &v.names[0];
    let children: Vec<_> = (0..6)
        .map(|_| {
            gocker(&["volume", "create", name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(ok(&o).trim(), name.as_str());
    }
    let filt = format!("name={name}");
    let listed = ok(&g(&["volume", "ls", "-q", "--filter", &filt]));
    assert_eq!(listed.lines().collect::<Vec<_>>(), vec![name.as_str()]);
    let dir = volumes_dir().join(name);
    let mut entries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, vec!["_data", "meta.json"]);
    // Creating it again answers with the same volume (same creation time).
    let before = ok(&g(&["volume", "inspect", name]));
    ok(&g(&["volume", "create", name, "--label", "ignored=yes"]));
    assert_eq!(ok(&g(&["volume", "inspect", name])), before);
}

#[test]
fn create_ls_inspect_rm_prune_as_docker() {
    let mut v = Vols::new("cli", 3);
    let label = format!("gocker.test={}", unique("l"));
    // A generated name: 64 hex digits.
    let o = g(&["volume", "create", "--label", &label]);
    let generated = ok(&o).trim().to_owned();
    v.names.push(generated.clone());
    assert!(
        generated.len() == 64 && generated.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated}"
    );
    assert!(data_dir(&generated).is_dir());
    ok(&g(&[
        "volume",
        "create",
        &v.names[0],
        "--label",
        &label,
        "--label",
        "empty",
    ]));
    ok(&g(&["volume", "create", &v.names[1], "-d", "local"]));

    let o = g(&["volume", "inspect", &v.names[0], &generated]);
    let j: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    let a = j.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["Name"], v.names[0].as_str());
    assert_eq!(a[0]["Driver"], "local");
    assert_eq!(a[0]["Scope"], "local");
    assert_eq!(
        a[0]["Mountpoint"],
        data_dir(&v.names[0]).display().to_string().as_str()
    );
    let (k, val) = label.split_once('=').unwrap();
    assert_eq!(a[0]["Labels"][k], val);
    assert_eq!(a[0]["Labels"]["empty"], "");
    assert!(a[0]["Options"].is_object());
    let created = a[0]["CreatedAt"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && &created[10..11] == "T",
        "{created}"
    );
    // A missing one: the others are shown, the exit code says it failed.
    let o = g(&["volume", "inspect", &v.names[1], "no-such-volume-xyz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no-such-volume-xyz"), "{}", stderr(&o));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()[0]["Name"],
        v.names[1].as_str()
    );

    // ls: docker's columns, -q, filters.
    let out = ok(&g(&["volume", "ls"]));
    assert!(
        out.lines().next().unwrap().starts_with("DRIVER")
            && out.lines().next().unwrap().contains("VOLUME NAME")
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("local") && l.ends_with(v.names[0].as_str())),
        "{out}"
    );
    let lab = format!("label={label}");
    let mut q: Vec<String> = ok(&g(&["volume", "ls", "-q", "--filter", &lab]))
        .lines()
        .map(str::to_owned)
        .collect();
    q.sort();
    let mut want = vec![v.names[0].clone(), generated.clone()];
    want.sort();
    assert_eq!(q, want);

    // Bad input names the value (and the flag).
    for (args, needle) in [
        (vec!["volume", "create", "../escape"], "\"../escape\""),
        (vec!["volume", "create", "a/b"], "\"a/b\""),
        (vec!["volume", "create", "-d", "nfs", "x1"], "\"nfs\""),
        (vec!["volume", "create", "--label", "=v", "x2"], "--label"),
        (vec!["volume", "ls", "--filter", "colour=red"], "colour=red"),
    ] {
        let o = g(&args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    let long = "x".repeat(300);
    let o = g(&["volume", "create", &long]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains(&long) && stderr(&o).contains("255"),
        "{}",
        stderr(&o)
    );
    assert!(!volumes_dir().join("x1").exists() && !volumes_dir().join("x2").exists());
    let r = rootfs();
    for bad in ["bad name:/x", "_x:/x", "ok:relative", "okk:/x:zz"] {
        let o = g(&["run", "--rm", "--rootfs", &r, "-v", bad, "true"]);
        assert_eq!(o.status.code(), Some(125), "{bad}");
        assert!(
            stderr(&o).contains("--volume") && stderr(&o).contains(bad),
            "{bad}: {}",
            stderr(&o)
        );
    }
    assert!(!volumes_dir().join("ok").exists() && !volumes_dir().join("okk").exists());

    // rm: a missing volume fails unless -f.
    let o = g(&["volume", "rm", "no-such-volume-xyz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no such volume: no-such-volume-xyz"),
        "{}",
        stderr(&o)
    );
    ok(&g(&["volume", "rm", "-f", "no-such-volume-xyz"]));

    // prune without -f asks docker's question on stdout and reads the answer from stdin: no
    // answer (EOF) and "n" remove nothing and exit 0.
    for answer in [&b""[..], b"n\n"] {
        let mut child = gocker(&["volume", "prune", "--filter", &lab])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), answer).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("Are you sure you want to continue? [y/N]"),
            "{}",
            stdout(&o)
        );
        assert!(stderr(&o).contains("nothing removed"), "{}", stderr(&o));
        assert!(volume_listed(&v.names[0]) && volume_listed(&generated));
    }
    // With -f and the test's label: exactly the two labelled unused volumes go.
    std::fs::write(data_dir(&v.names[0]).join("blob"), vec![0u8; 5000]).unwrap();
    let o = g(&["volume", "prune", "-f", "--filter", &lab]);
    let out = ok(&o);
    assert!(out.starts_with("Deleted Volumes:\n"), "{out}");
    let mut gone: Vec<String> = out
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    gone.sort();
    assert_eq!(gone, want);
    assert!(out.contains("Total reclaimed space: 5kB"), "{out}");
    assert!(
        !volume_listed(&v.names[0]) && !volume_listed(&generated) && volume_listed(&v.names[1])
    );
    assert!(!volumes_dir().join(&v.names[0]).exists());
}

#[test]
fn nocopy_and_host_paths_still_bind() {
    let v = Vols::new("nc", 1);
    let w = Work::new("nc");
    std::fs::create_dir_all(w.root().join("app")).unwrap();
    std::fs::write(w.root().join("app/f"), "f").unwrap();
    let o = run_in(
        &w.root(),
        &["-v", &format!("{}:/app:nocopy", v.names[0])],
        "ls /app | wc -l",
    );
    assert_eq!(stdout(&o).trim(), "0", "{}", stderr(&o));
    assert!(std::fs::read_dir(data_dir(&v.names[0]))
        .unwrap()
        .next()
        .is_none());
    // A host directory is still a bind of that directory (not a volume), a ./path is refused.
    let host = w.0.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    let o = run_in(
        &w.root(),
        &["-v", &format!("{}:/app", host.display())],
        "echo h > /app/h; ls /app",
    );
    assert_eq!(stdout(&o), "h\n", "{}", stderr(&o));
    assert!(
        host.join("h").exists() && !host.join("f").exists(),
        "no copy-up into a host directory"
    );
    let o = run_in(&w.root(), &["-v", "./rel:/app"], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("./rel:/app"), "{}", stderr(&o));
}

/// Removes the test's image tags on drop.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        let mut a = vec!["rmi"];
        a.extend(self.0.iter().map(String::as_str));
        let _ = gocker(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn copy_up_from_an_image_merges_its_layers() {
    let mut v = Vols::new("img", 1);
    let name = v.names[0].clone();
    let w = Work::new("img");
    let app = w.root().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("base"), "base\n").unwrap();
    std::fs::write(app.join("gone"), "gone\n").unwrap();
    let tar = w.0.join("img.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(w.root())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(tar.exists(), "tar: {st}");
    let tag = unique("nvimg").to_lowercase();
    let base = format!("{tag}:base");
    let two = format!("{tag}:two");
    let _images = Images(vec![base.clone(), two.clone()]);
    ok(&g(&["import", &tar.display().to_string(), &base]));
    // A second layer over it: a whiteout for /app/gone, a new /app/top.
    let c = v.container("img");
    ok(&g(&[
        "run",
        "--name",
        &c,
        "--network",
        "none",
        &base,
        "/bin/sh",
        "-c",
        if single_id() {
            "rm /app/gone; echo top > /app/top"
        } else {
            "rm /app/gone; echo top > /app/top; chown 100:101 /app/top"
        },
    ]));
    ok(&g(&["commit", &c, &two]));
    ok(&g(&["rm", &c]));
    let o = g(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{name}:/app"),
        &two,
        "/bin/sh",
        "-c",
        "cat /app/base /app/top; ls /app; stat -c %u:%g /app/top",
    ]);
    // The copy has the owner the container sees in the image (rootless unpacking gives the
    // layer's files to the user, i.e. the container's root).
    let o2 = g(&[
        "run",
        "--rm",
        "--network",
        "none",
        &two,
        "stat",
        "-c",
        "%u:%g",
        "/app/top",
    ]);
    let owner = ok(&o2);
    if am_root() {
        assert_eq!(owner, "100:101\n");
    }
    assert_eq!(ok(&o), format!("base\ntop\nbase\ntop\n{owner}"));
    let d = data_dir(&name);
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["base", "top"],
        "the whiteout hides /app/gone in the volume too"
    );
    assert_eq!(std::fs::read_to_string(d.join("top")).unwrap(), "top\n");
}
