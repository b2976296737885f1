//! The OCI conformance fixes, as a user of `gocker-oci` sees them (as root and as the
//! unprivileged test users of `cargo xtask itest`): a non-root process keeps the capabilities
//! the spec lists, an invalid `ociVersion` and settings gocker cannot honour are refused by
//! name, mounts keep their order and propagation, `/proc` works with the host's PID namespace,
//! and `linux.devices` nodes are made, bound or refused with a clear error. The runtime-tools
//! validation suite itself runs in `cargo xtask conformance`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gocker-oci"))
}

fn rootfs() -> String {
    std::env::var("GOCKER_TEST_ROOTFS").expect("set GOCKER_TEST_ROOTFS (run via cargo xtask itest)")
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A state root and a bundle in a scratch directory, removed on drop.
struct Env {
    dir: PathBuf,
    id: String,
}

impl Env {
    fn new(tag: &str) -> Env {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) has no memory-safety preconditions.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let dir = std::env::temp_dir().join(format!(
            "gocker-oci-conformance-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        Env {
            dir,
            id: format!("{tag}-{}", std::process::id()),
        }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    /// config.json from `gocker-oci spec` with the test rootfs, `args`, and `edit`.
    fn spec(&self, args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.bundle().join("config.json");
        let _ = std::fs::remove_file(&path);
        let mut c = Command::new(bin());
        c.args(["spec", "--bundle"]).arg(self.bundle());
        if !root() {
            c.arg("--rootless");
        }
        assert!(c.status().unwrap().success());
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["root"] = serde_json::json!({"path": rootfs(), "readonly": true});
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = serde_json::json!(args);
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    /// `gocker-oci run`: create, start, wait, delete; output through files (the container's
    /// process inherits them).
    fn run(&self) -> Output {
        self.oci(&["run", "--bundle", self.bundle().to_str().unwrap(), &self.id])
    }

    fn oci(&self, args: &[&str]) -> Output {
        let (out, err) = (self.dir.join("out"), self.dir.join("err"));
        let st = Command::new(bin())
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Output {
            status: st,
            stdout: std::fs::read(&out).unwrap(),
            stderr: std::fs::read(&err).unwrap(),
        }
    }

    /// Runs the container and returns its stdout, asserting success.
    fn run_ok(&self) -> String {
        let o = self.run();
        assert_eq!(
            o.status.code(),
            Some(0),
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs the container, expecting a refusal: returns stderr, and checks nothing is left.
    fn refused(&self) -> String {
        let o = self.run();
        assert!(!o.status.success(), "{o:?}");
        assert!(
            !self.dir.join("state").join(&self.id).exists(),
            "state left behind"
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The caller's subordinate range in `file` (`/etc/subuid`), by user name.
fn subordinate(file: &str) -> Option<(u32, u32)> {
    let uid = rustix::process::geteuid().as_raw();
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
        })?;
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 3 && (f[0] == name || f[0] == uid.to_string()))
            .then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))
            .flatten()
    })
}

/// Makes uid/gid 1000 exist in the container: the rootful default maps 65536 ids; a rootless
/// user needs a subordinate range (`None`: there is none, the test does not apply).
fn map_a_non_root_user(v: &mut serde_json::Value) -> Option<()> {
    if root() {
        return Some(());
    }
    let (su, sn) = subordinate("/etc/subuid")?;
    let (sg, gn) = subordinate("/etc/subgid")?;
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    v["linux"]["uidMappings"] = serde_json::json!([
        {"containerID": 0, "hostID": uid, "size": 1},
        {"containerID": 1, "hostID": su, "size": sn.min(65536)},
    ]);
    v["linux"]["gidMappings"] = serde_json::json!([
        {"containerID": 0, "hostID": gid, "size": 1},
        {"containerID": 1, "hostID": sg, "size": gn.min(65536)},
    ]);
    Some(())
}

fn cap_line(status: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:\t")))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

#[test]
fn a_non_root_user_keeps_the_capabilities_the_spec_lists() {
    let env = Env::new("caps");
    let mut applies = true;
    let caps = serde_json::json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    env.spec(&["cat", "/proc/self/status"], |v| {
        applies = map_a_non_root_user(v).is_some();
        v["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        v["process"]["capabilities"] = serde_json::json!({
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": caps, "ambient": caps,
        });
    });
    if !applies {
        eprintln!("skipped: no subordinate range to map a non-root user");
        return;
    }
    let status = env.run_ok();
    // CAP_KILL is 5, CAP_NET_BIND_SERVICE 10 (linux/capability.h).
    let want: u64 = (1 << 5) | (1 << 10);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(cap_line(&status, set), want, "{set} in\n{status}");
    }
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t1000\t")),
        "{status}"
    );

    // Without the ambient set, nothing survives the execve of a non-root user (the kernel's
    // rules, as with runc): the permitted and effective sets of the spec hold until then only.
    env.spec(&["cat", "/proc/self/status"], |v| {
        map_a_non_root_user(v);
        v["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        v["process"]["capabilities"] = serde_json::json!({
            "bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps,
        });
    });
    let status = env.run_ok();
    assert_eq!(cap_line(&status, "CapEff"), 0, "{status}");
    assert_eq!(cap_line(&status, "CapInh"), want, "{status}");
}

#[test]
fn an_invalid_oci_version_is_refused_naming_it() {
    let env = Env::new("ociver");
    env.spec(&["true"], |v| v["ociVersion"] = "invalid".into());
    let e = env.refused();
    assert!(
        e.contains("config.json: ociVersion: invalid value \"invalid\"") && e.contains("SemVer"),
        "{e}"
    );
    env.spec(&["true"], |v| v["ociVersion"] = "2.0.0".into());
    let e = env.refused();
    assert!(e.contains("ociVersion") && e.contains("2.0.0"), "{e}");
    env.spec(&["true"], |v| v["ociVersion"] = "1.0.2-dev".into());
    env.run_ok();
}

#[test]
fn settings_gocker_cannot_honour_are_refused_by_name() {
    let env = Env::new("refuse");
    for (field, value) in [
        (
            "linux.resources.network",
            serde_json::json!({"network": {"classID": 1048577}}),
        ),
        (
            "linux.resources.hugepageLimits",
            serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}),
        ),
        (
            "linux.resources.rdma",
            serde_json::json!({"rdma": {"mlx5_1": {"hcaHandles": 3}}}),
        ),
        (
            "linux.resources.memory.kernel",
            serde_json::json!({"memory": {"kernel": 67108864}}),
        ),
    ] {
        env.spec(&["true"], |v| v["linux"]["resources"] = value.clone());
        let e = env.refused();
        assert!(e.contains(field) && e.contains("config.json"), "{e}");
    }
    env.spec(&["true"], |v| {
        v["linux"]["rootfsPropagation"] = "rsideways".into();
    });
    let e = env.refused();
    assert!(e.contains("linux.rootfsPropagation"), "{e}");
    env.spec(&["true"], |v| {
        v["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["sync"]}));
    });
    let e = env.refused();
    assert!(e.contains("/data") && e.contains("\"sync\""), "{e}");
}

#[test]
fn mounts_appear_in_the_specs_order_with_their_propagation() {
    let env = Env::new("order");
    env.spec(&["cat", "/proc/self/mountinfo"], |v| {
        let m = v["mounts"].as_array_mut().unwrap();
        m.push(serde_json::json!({"destination": "/tmp/first", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}));
        m.push(serde_json::json!({"destination": "/mnt/etc-shared", "source": "/etc", "options": ["bind", "shared"]}));
        m.push(serde_json::json!({"destination": "/tmp/last", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]}));
        m.push(serde_json::json!({"destination": "/mnt/etc-private", "source": "/etc", "options": ["rbind", "rprivate"]}));
    });
    let info = env.run_ok();
    let lines: Vec<&str> = info.lines().collect();
    let at = |dest: &str| {
        lines
            .iter()
            .position(|l| l.split(' ').nth(4) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} not mounted:\n{info}"))
    };
    let order = [
        at("/tmp/first"),
        at("/mnt/etc-shared"),
        at("/tmp/last"),
        at("/mnt/etc-private"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{info}");
    let tags = |dest: &str| {
        let l = lines[at(dest)];
        l[..l.find(" - ").unwrap()].to_owned()
    };
    assert!(tags("/mnt/etc-shared").contains(" shared:"), "{info}");
    assert!(tags("/tmp/last").contains(" shared:"), "{info}");
    assert!(!tags("/mnt/etc-private").contains("shared:"), "{info}");
    assert!(!tags("/tmp/first").contains("shared:"), "{info}");
}

#[test]
fn proc_works_with_the_hosts_pid_namespace() {
    let env = Env::new("hostpid");
    env.spec(
        &["sh", "-c", "grep NSpid /proc/self/status; cat /proc/1/comm"],
        |v| {
            let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "pid");
        },
    );
    let out = env.run_ok();
    // One level: the container's PID namespace is the runtime's, and so is the /proc it sees.
    let nspid = out.lines().next().unwrap_or_default();
    assert_eq!(nspid.split_whitespace().count(), 2, "{out}");
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert_eq!(out.lines().nth(1), Some(host_init.trim()), "{out}");
}

#[test]
fn listed_devices_are_made_bound_or_refused_clearly() {
    let env = Env::new("devices");
    let fuse = std::fs::metadata("/dev/fuse").is_ok();
    env.spec(
        &["sh", "-c", "stat -c '%n %F %a %u:%g %t:%T' /dev/myfifo; ls /dev/fuse 2>/dev/null; true"],
        |v| {
            let mut devices = vec![serde_json::json!(
                {"path": "/dev/myfifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640, "uid": 0, "gid": 0}
            )];
            if fuse {
                devices.push(serde_json::json!({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}));
            }
            v["linux"]["devices"] = serde_json::json!(devices);
        },
    );
    let out = env.run_ok();
    assert!(out.starts_with("/dev/myfifo fifo 640 0:0 0:0\n"), "{out}");
    if fuse {
        assert!(out.contains("/dev/fuse"), "{out}");
    }
    // A node of the right path but another number is not bound instead: as root it is made
    // with the number the spec gives (as runc does); rootless it is refused.
    env.spec(&["stat", "-c", "%F %t:%T", "/dev/null"], |v| {
        v["linux"]["devices"] =
            serde_json::json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}]);
    });
    if root() {
        assert_eq!(env.run_ok(), "character special file 1:5\n");
    } else {
        let e = env.refused();
        assert!(
            e.contains("/dev/null") && e.contains("c 1:5") && e.contains("a character device 1:3"),
            "{e}"
        );
    }
    // A device the host does not have: a user namespace cannot create it (as root, ring0 makes
    // it: `devices_the_host_lacks_are_made_with_the_specs_type_number_mode_and_owner`).
    if !root() {
        env.spec(&["true"], |v| {
            v["linux"]["devices"] =
                serde_json::json!([{"path": "/dev/test1", "type": "c", "major": 10, "minor": 666}]);
        });
        let e = env.refused();
        assert!(
            e.contains("/dev/test1") && e.contains("c 10:666") && e.contains("user namespace"),
            "{e}"
        );
    }
}

/// Device numbers no host has a driver for (those of the runtime-tools `linux_devices` file).
const MADE_UP: [(char, u32, u32); 2] = [('c', 10, 666), ('b', 8, 666)];

/// Nodes on the host with a made-up number ([`MADE_UP`]), under `dir` (two levels down), without
/// following symlinks.
fn host_nodes_with_made_up_numbers(dir: &std::path::Path, depth: u32) -> Vec<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let ft = md.file_type();
        let (major, minor) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
        let kind = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            ' '
        };
        if MADE_UP.contains(&(kind, major, minor)) {
            found.push(e.path());
        }
        if ft.is_dir() && depth > 0 {
            found.extend(host_nodes_with_made_up_numbers(&e.path(), depth - 1));
        }
    }
    found
}

/// The host's mount table lines that mention `needle`.
fn host_mounts_with(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn devices_the_host_lacks_are_made_with_the_specs_type_number_mode_and_owner() {
    let env = Env::new("madedev");
    assert!(
        host_nodes_with_made_up_numbers(std::path::Path::new("/dev"), 2).is_empty(),
        "the host has a node with a made-up number: the test cannot tell who made it"
    );
    let script = "stat -c '%n|%F|%t:%T|%a|%u:%g' /dev/test-c /dev/test-b; ls -ln /dev/test-c; \
        echo hi > /dev/mynull && echo wrote; head -c 4 /dev/mynull | wc -c; \
        cat /dev/test-b 2>&1 >/dev/null | sed 's/.*: //'; \
        awk '$5 ~ /^\\/dev\\/(test-c|test-b|mynull)$/ {print $5, $6}' /proc/self/mountinfo";
    env.spec(&["sh", "-c", script], |v| {
        v["linux"]["devices"] = serde_json::json!([
            {"path": "/dev/test-c", "type": "c", "major": 10, "minor": 666, "fileMode": 0o620, "uid": 1, "gid": 2},
            {"path": "/dev/test-b", "type": "b", "major": 8, "minor": 666, "fileMode": 0o640, "uid": 0, "gid": 6},
            // The host's null device, under a name the host does not have: usable when made.
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
        ]);
    });
    if !root() {
        // Rootless: a user namespace cannot make a node; the error names it.
        let e = env.refused();
        assert!(
            e.contains("/dev/test-c") && e.contains("c 10:666") && e.contains("user namespace"),
            "{e}"
        );
        return;
    }
    let out = env.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.get(..2),
        Some(
            &[
                // stat prints the numbers in hex: 10:666 is a:29a.
                "/dev/test-c|character special file|a:29a|620|1:2",
                "/dev/test-b|block special file|8:29a|640|0:6",
            ][..]
        ),
        "{out}"
    );
    let ls: Vec<&str> = lines.get(2).unwrap_or(&"").split_whitespace().collect();
    assert_eq!(
        ls.get(..6),
        Some(&["crw--w----", "1", "1", "2", "10,", "666"][..]),
        "{out}"
    );
    // Written and read: the bind of a made node is not nodev (open would be refused: EACCES).
    assert_eq!(lines.get(3..5), Some(&["wrote", "0"][..]), "{out}");
    // Opening a block device without a driver: ENXIO, not "Permission denied" (nodev).
    assert_eq!(lines.get(5), Some(&"No such device or address"), "{out}");
    let mounts = &lines[6..];
    assert_eq!(mounts.len(), 3, "{out}");
    for m in mounts {
        let opts = m.split_whitespace().nth(1).unwrap_or_default();
        assert!(!opts.split(',').any(|o| o == "nodev"), "{m}");
        assert!(opts.split(',').any(|o| o == "nosuid"), "{m}");
    }
    // Nothing on the host: no node made there, no tmpfs of the runtime's left attached.
    assert!(
        host_nodes_with_made_up_numbers(std::path::Path::new("/dev"), 2).is_empty(),
        "a node was made on the host"
    );
    assert!(!std::path::Path::new("/dev/test-c").exists());
    assert!(!std::path::Path::new("/dev/mynull").exists());
    assert_eq!(host_mounts_with("gocker-dev"), Vec::<String>::new());

    // An owner that the container's user namespace does not map: refused by name, nothing left.
    env.spec(&["true"], |v| {
        v["linux"]["devices"] = serde_json::json!([
            {"path": "/dev/test-c", "type": "c", "major": 10, "minor": 666, "uid": 70000}
        ]);
    });
    let e = env.refused();
    assert!(
        e.contains("/dev/test-c") && e.contains("c 10:666") && e.contains("uid 70000"),
        "{e}"
    );
}

#[test]
fn a_device_path_never_leads_outside_the_container_root() {
    let env = Env::new("evildev");
    // A rootfs of the test's own, with symlinks that lead out of it if followed on the host:
    // `/dev/evil -> /etc` and `/evil -> HOST`, a directory of the host's.
    let copy = env.dir.join("rootfs");
    let host = env.dir.join("host-side");
    std::fs::create_dir_all(&host).unwrap();
    // What the caller cannot read (a rootless caller: the rootfs's 0700 /root) is left out.
    let _ = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs()))
        .arg(&copy)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        copy.join("bin/sh").symlink_metadata().is_ok(),
        "no copy of the rootfs"
    );
    std::fs::create_dir_all(copy.join("dev")).unwrap();
    std::os::unix::fs::symlink("/etc", copy.join("dev/evil")).unwrap();
    std::os::unix::fs::symlink(&host, copy.join("evil")).unwrap();
    // HOST exists inside the rootfs too: followed inside the root, the symlink leads there.
    std::fs::create_dir_all(copy.join(host.strip_prefix("/").unwrap())).unwrap();
    let name = format!("gocker-evil-{}", std::process::id());
    let dotdot = format!("/dev/../../../../../..{}/dotdot", host.display());
    // As root, char devices (made by ring0, bound by ring2); rootless, FIFOs (made by ring2).
    let (typ, major, minor) = if root() { ("c", 10, 666) } else { ("p", 0, 0) };
    let paths = [
        format!("/dev/evil/{name}"),
        format!("/evil/{name}"),
        dotdot.clone(),
    ];
    let script = format!(
        "stat -c '%n|%F' /etc/{name} {host}/{name} {host}/dotdot",
        host = host.display()
    );
    let mounts_before = host_mounts_with(env.dir.to_str().unwrap());
    env.spec(&["sh", "-c", &script], |v| {
        v["root"] = serde_json::json!({"path": copy, "readonly": false});
        // The rootfs's own /dev (with its symlink), not a tmpfs over it.
        v["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
        v["linux"]["devices"] = paths
            .iter()
            .map(|p| serde_json::json!({"path": p, "type": typ, "major": major, "minor": minor}))
            .collect();
    });
    let out = env.run_ok();
    // Each landed inside the container's root, where its path leads from there.
    let kind = if root() {
        "character special file"
    } else {
        "fifo"
    };
    let want = [
        format!("/etc/{name}|{kind}"),
        format!("{}/{name}|{kind}", host.display()),
        format!("{}/dotdot|{kind}", host.display()),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");
    // And nothing outside it: not in the host's /etc, not in HOST, no node under /dev.
    assert!(!std::path::Path::new("/etc").join(&name).exists());
    assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0, "{:?}", host);
    assert!(host_nodes_with_made_up_numbers(std::path::Path::new("/dev"), 2).is_empty());
    assert!(host_nodes_with_made_up_numbers(&host, 0).is_empty());
    // What the container made is in its own rootfs (the mount targets it bound the nodes on).
    assert!(copy.join("etc").join(&name).exists());
    assert_eq!(host_mounts_with(env.dir.to_str().unwrap()), mounts_before);
    assert_eq!(host_mounts_with("gocker-dev"), Vec::<String>::new());
}
