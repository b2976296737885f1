//! Gocker's ring0 as its own binary: runs an OCI bundle in the foreground (create, start, wait,
//! delete), exec'ing the `ring1` and `ring2` binaries installed beside it.
//!
//! Usage: `ring0 BUNDLE_DIR [ID]`; exits with the payload's status (docker conventions).

fn main() {
    gocker_runtime::ring_entry();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(bundle) = args.first() else {
        eprintln!(
            "usage: ring0 BUNDLE_DIR [ID]   (runs BUNDLE_DIR/config.json through ring1 and ring2)"
        );
        std::process::exit(125);
    };
    let id = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| format!("ring0-{}", std::process::id()));
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_owned()))
        .unwrap_or_default();
    let spawn = gocker_runtime::SpawnMode::Exec {
        ring1: dir.join("ring1"),
        ring2: dir.join("ring2"),
    };
    match gocker_runtime::bundle::run(std::path::Path::new(bundle), &id, spawn) {
        Ok(status) => std::process::exit(status.code()),
        Err(e) => {
            eprintln!("ring0: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
