//! Against a real cgroup v2 hierarchy with its controllers (run as root inside `cargo xtask vmtest`;
//! ignored elsewhere because hybrid hosts have no v2 controllers).

use std::process::Command;
use std::time::Duration;

use gocker_cgroups::{limits, Cgroup, Hierarchy};

fn parent() -> std::path::PathBuf {
    Hierarchy::find()
        .expect("cgroup2 mounted")
        .mount()
        .join("gocker-test")
}

#[test]
#[ignore = "needs a pure cgroup v2 host: run by cargo xtask vmtest"]
fn limits_stats_freeze_kill_remove() {
    let cg = Cgroup::create(&parent(), "t1", &["memory", "pids", "cpu"]).unwrap();
    let writes = vec![
        limits::Write {
            controller: "pids",
            file: "pids.max".into(),
            value: "5".into(),
        },
        limits::Write {
            controller: "memory",
            file: "memory.max".into(),
            value: "33554432".into(),
        },
        limits::Write {
            controller: "cpu",
            file: "cpu.max".into(),
            value: "50000 100000".into(),
        },
    ];
    cg.apply(&writes).unwrap();
    assert_eq!(
        std::fs::read_to_string(cg.path().join("memory.max"))
            .unwrap()
            .trim(),
        "33554432"
    );
    assert_eq!(
        std::fs::read_to_string(cg.path().join("cpu.max"))
            .unwrap()
            .trim(),
        "50000 100000"
    );

    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    cg.attach(child.id() as i32).unwrap();
    assert_eq!(cg.value("pids.current").unwrap(), 1);
    // Memory is charged where it was allocated (v2 does not move charges), so only read it here.
    cg.value("memory.current").unwrap();
    assert!(cg
        .keyed("cpu.stat")
        .unwrap()
        .iter()
        .any(|(k, _)| k == "usage_usec"));

    cg.freeze(true, Duration::from_secs(5)).unwrap();
    assert!(std::fs::read_to_string(cg.path().join("cgroup.events"))
        .unwrap()
        .contains("frozen 1"));
    assert!(cg.is_frozen());
    cg.freeze(false, Duration::from_secs(5)).unwrap();
    assert!(!cg.is_frozen());

    cg.kill().unwrap();
    let st = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    cg.remove(Duration::from_secs(2)).unwrap();
    assert!(!parent().join("t1").exists());
}

#[test]
#[ignore = "needs a pure cgroup v2 host: run by cargo xtask vmtest"]
fn remove_kills_what_is_left() {
    let cg = Cgroup::create(&parent(), "t2", &["pids"]).unwrap();
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    cg.attach(child.id() as i32).unwrap();
    cg.remove(Duration::from_secs(2)).unwrap();
    assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
}

/// CPU time (utime + stime, clock ticks) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// The freezer is a core cgroup v2 file: it works in a cgroup without controllers, so this runs
/// wherever a cgroup2 hierarchy is mounted and we are root (also on a hybrid host's empty
/// unified hierarchy). A busy loop's CPU time stops while frozen and moves again after the thaw.
#[test]
fn freeze_stops_a_busy_loop_and_thaw_resumes_it() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: creating a cgroup at the cgroup2 root needs root");
        return;
    }
    let Ok(h) = Hierarchy::find() else {
        eprintln!("skipped: no cgroup2 hierarchy mounted");
        return;
    };
    let rel = format!("gocker-freeze-test-{}", std::process::id());
    let cg = Cgroup::create_under(h.mount(), std::path::Path::new(&rel), &[]).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let result = std::panic::catch_unwind(|| {
        cg.attach(pid as i32).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        cg.freeze(true, Duration::from_secs(5)).unwrap();
        let events = std::fs::read_to_string(cg.path().join("cgroup.events")).unwrap();
        assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(1000));
        let frozen = cpu_ticks(pid) - before;
        assert!(frozen <= 1, "{frozen} ticks of CPU while frozen");
        cg.freeze(false, Duration::from_secs(5)).unwrap();
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(1000));
        let thawed = cpu_ticks(pid) - before;
        assert!(
            thawed >= 20,
            "only {thawed} ticks of CPU in 1 s after the thaw"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    Cgroup::open(cg.path())
        .remove(Duration::from_secs(2))
        .unwrap();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
