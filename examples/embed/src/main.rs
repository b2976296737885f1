//! Embedding Gocker: a host program (here with a worker thread, as real daemons have) runs one
//! container through the rings. Because the program is multi-threaded it uses the exec spawn
//! mode, re-executing itself as ring1 and ring2; `ring_entry()` at the top of `main` is what makes
//! that work.
//!
//! Usage: `gocker-embed-example ROOTFS [COMMAND [ARG...]]` (default command: `sh -c 'echo ...'`).

use std::path::PathBuf;

use gocker_runtime::bundle::idmaps_for;
use gocker_runtime::state::StateStore;
use gocker_runtime::{spec, Container, ContainerConfig, SpawnMode};

fn main() {
    gocker_runtime::ring_entry();

    let mut args = std::env::args().skip(1);
    let Some(rootfs) = args.next().map(PathBuf::from) else {
        eprintln!("usage: gocker-embed-example ROOTFS [COMMAND [ARG...]]");
        std::process::exit(2);
    };
    let mut command: Vec<String> = args.collect();
    if command.is_empty() {
        command = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo hello from $(hostname) as pid $$".into(),
        ];
    }

    // A background thread, as any real host program has: forking without exec would be unsafe now.
    let heartbeat = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(50)));

    let result = (|| -> gocker_runtime::Result<i32> {
        let rootfs = std::path::absolute(&rootfs)
            .map_err(|e| gocker_runtime::RuntimeError::Config(e.to_string()))?;
        let mut s = spec::default_spec(rootfs, command)?;
        s.set_hostname(Some("embedded".into()));
        let mut cfg = ContainerConfig::new(
            format!("embed-{}", std::process::id()),
            s.clone(),
            idmaps_for(&s)?,
        );
        let me = PathBuf::from("/proc/self/exe");
        cfg.spawn = SpawnMode::Exec {
            ring1: me.clone(),
            ring2: me,
        };
        let store = StateStore::open(StateStore::default_root())?;
        let mut c = Container::create(cfg, store, &format!("embed-{}", std::process::id()), true)?;
        println!("created container {} (payload pid {:?})", c.id(), c.pid());
        c.start()?;
        let status = c.wait()?;
        c.delete()?;
        Ok(status.code())
    })();
    let _ = heartbeat.join();
    match result {
        Ok(code) => {
            println!("container exited with {code}");
            std::process::exit(code)
        }
        Err(e) => {
            eprintln!("gocker-embed-example: {e}");
            std::process::exit(e.exit_code())
        }
    }
}
