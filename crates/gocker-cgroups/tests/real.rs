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

    cg.freeze(true).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(std::fs::read_to_string(cg.path().join("cgroup.events"))
        .unwrap()
        .contains("frozen 1"));
    cg.freeze(false).unwrap();

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
