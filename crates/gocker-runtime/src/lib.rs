//! The Gocker runtime: composes the mechanism crates into the ring process model and the OCI
//! container lifecycle.
//!
//! ```text
//! ring0 (caller's privileges)  --clone3(user|mnt|uts|ipc|net|cgroup)-->  ring1 (root in the new userns)
//!   writes id maps, idmaps the rootfs,                                     sets hostname, lo up,
//!   forwards signals, records exit status                                  --clone3(pid|mnt)--> ring2
//!                                                                          mounts, pivot_root, drops caps,
//!                                                                          waits for start, execs the payload (PID 1)
//! ```
//!
//! [`Container::create`] leaves ring2 waiting at the start barrier (OCI "created");
//! [`Container::start`] releases it; [`Container::wait`] returns the exit status;
//! [`Container::delete`] removes everything (also done on drop).

pub mod attach;
pub mod bundle;
mod channel;
mod config;
pub mod control;
pub mod detach;
mod entry;
mod error;
pub mod events;
pub mod health;
mod healthcheck;
mod init;
mod initsys;
mod joins;
mod keys;
mod lift;
pub mod logs;
pub mod net;
pub mod nsexec;
pub mod oci;
mod oci_init;
mod own_files;
mod process;
mod proto;
pub mod restart;
mod ring0;
mod ring1;
mod ring2;
pub mod seccomp;
mod signals;
mod spawn;
pub mod spec;
pub mod state;
mod supervise;
mod sys;
mod sysctl;
mod tty;
mod volatile;
pub mod workspace;

pub use config::{ContainerConfig, CowRoot, MonitorOptions, OciMode, RootMode, SpawnMode};
pub use entry::ring_entry;
pub use error::{ExitStatus, RuntimeError};
pub use ring0::{describe_root, Container};
pub use state::{ContainerState, StateStore, Status};

pub type Result<T> = std::result::Result<T, RuntimeError>;
