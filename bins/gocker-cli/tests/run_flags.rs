//! Issue 16: docker's `run` flags that map onto the spec — `--ulimit`, `--sysctl`, `--shm-size`,
//! `--group-add`, `--cidfile` — checked inside the container, as root and as the unprivileged
//! users (`cargo xtask itest`).

mod common;
use common::*;

fn single_id() -> bool {
    std::env::var("GOCKER_TEST_MODE").as_deref() == Ok("rootless-single")
}

#[test]
fn ulimit_sysctl_and_shm_size_reach_the_container() {
    let o = sh(
        &[
            "--network",
            "none",
            "--ulimit",
            "nofile=512:1024",
            "--ulimit",
            "core=-1",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--sysctl",
            "kernel.msgmax=4096",
            "--shm-size",
            "1m",
        ],
        "ulimit -n; ulimit -Hn; ulimit -c; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax; \
         df -k /dev/shm | awk 'NR == 2 { print $2 }'",
    );
    assert_eq!(ok(&o), "512\n1024\nunlimited\n1\n4096\n1024\n");
    // The host's own values did not move.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/msgmax").unwrap(),
        "4096\n"
    );
}

#[test]
fn group_add_takes_numbers_and_the_containers_group_names() {
    if single_id() {
        // One id mapped: there is no other group to add (setgroups is denied there).
        return;
    }
    let o = sh(
        &[
            "--network",
            "none",
            "--group-add",
            "1234",
            "--group-add",
            "wheel",
        ],
        "id -G",
    );
    let groups: Vec<String> = ok(&o).split_whitespace().map(str::to_owned).collect();
    assert!(
        groups.iter().any(|g| g == "1234") && groups.iter().any(|g| g == "10"),
        "{groups:?}"
    );
}

#[test]
fn bad_values_are_refused_by_flag_and_value() {
    for (args, words) in [
        (
            &["--ulimit", "nofile=2:1"][..],
            &["--ulimit", "nofile=2:1", "soft"][..],
        ),
        (&["--ulimit", "files=1"], &["--ulimit", "files", "nofile"]),
        (
            &["--sysctl", "kernel.panic=1"],
            &["kernel.panic", "namespaced"],
        ),
        (&["--sysctl", "novalue"], &["--sysctl", "KEY=VALUE"]),
        (&["--shm-size", "lots"], &["--shm-size", "lots"]),
        (
            &["--group-add", "no-such-group"],
            &["--group-add", "no-such-group"],
        ),
    ] {
        let o = sh(&[&["--network", "none"], args].concat(), "echo ran");
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).contains("ran"), "{args:?}");
        for w in words {
            assert!(stderr(&o).contains(w), "{args:?}: {w:?} in {}", stderr(&o));
        }
    }
}

#[test]
fn cidfile_holds_the_id_and_a_second_container_cannot_reuse_it() {
    let dir = std::env::temp_dir().join(format!("gocker-cid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cid");
    let f = file.to_str().unwrap();
    let r = rootfs();
    let n = unique("cid");
    let out = ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--network",
        "none",
        "--cidfile",
        f,
        "--rootfs",
        &r,
        "sleep",
        "30",
    ]));
    let id = std::fs::read_to_string(&file).unwrap();
    assert_eq!(out.trim(), id, "the printed id is the file's");
    let inspect = ok(&g(&["inspect", &id]));
    assert!(inspect.contains(&n), "{inspect}");
    // The file exists: refused, naming it, and no second container is made.
    let n2 = unique("cid2");
    let o = g(&[
        "run",
        "--name",
        &n2,
        "--network",
        "none",
        "--cidfile",
        f,
        "--rootfs",
        &r,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains(f), "{}", stderr(&o));
    assert_ne!(g(&["inspect", &n2]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        id,
        "left as it was"
    );
    ok(&g(&["rm", "-f", &n]));
    // A container that the runtime refuses to create (a sysctl that is not namespaced) leaves
    // no cidfile.
    std::fs::remove_file(&file).unwrap();
    let o = g(&[
        "run",
        "--network",
        "none",
        "--cidfile",
        f,
        "--rootfs",
        &r,
        "--sysctl",
        "kernel.panic=1",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(!file.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mount_binds_volumes_and_tmpfs_as_v_and_tmpfs_do() {
    let dir = std::env::temp_dir().join(format!("gocker-mountflag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("host-file"), "from-host\n").unwrap();
    let bind = format!("type=bind,source={},target=/data,readonly", dir.display());
    let vol = unique("mountvol");
    let volume = format!("type=volume,source={vol},target=/vol");
    let o = sh(
        &[
            "--network",
            "none",
            "--mount",
            &bind,
            "--mount",
            &volume,
            "--mount",
            "type=tmpfs,target=/scratch,tmpfs-size=2m",
        ],
        "cat /data/host-file; touch /data/x 2>/dev/null && echo wrote || echo read-only; \
         echo kept > /vol/f; df -k /scratch | awk 'NR == 2 { print $2 }'",
    );
    assert_eq!(ok(&o), "from-host\nread-only\n2048\n");
    assert!(!dir.join("x").exists());
    // The named volume outlives the --rm container.
    let o = sh(
        &["--network", "none", "-v", &format!("{vol}:/vol")],
        "cat /vol/f",
    );
    assert_eq!(ok(&o), "kept\n");
    ok(&g(&["volume", "rm", &vol]));
    // A bind source that does not exist is refused (docker's rule for --mount), naming it.
    let o = sh(
        &["--mount", "type=bind,source=/no/such/dir,target=/d"],
        "true",
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("/no/such/dir"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
