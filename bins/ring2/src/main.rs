//! Gocker's ring2 as its own binary, for the exec spawn mode (`SpawnMode::Exec`): ring0 starts it with
//! `GOCKER_RING=ring2` and the descriptors it needs; run by hand it only explains itself.

fn main() {
    gocker_runtime::ring_entry();
    eprintln!("ring2: started without GOCKER_RING=ring2; this binary is executed by ring0 (see docs/architecture.md)");
    std::process::exit(2);
}
