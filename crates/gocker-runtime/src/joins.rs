//! User and PID namespaces that an OCI container joins by path.
//!
//! Network, IPC, UTS and cgroup namespaces given by path are joined by the creating process
//! before the rings exist ([`crate::oci`]). The user and PID namespaces cannot be: the creating
//! process must keep its host privileges, and a process cannot enter a PID namespace itself (only
//! its children do). So ring0 opens them here and ring1 joins them: the user namespace first (then
//! it makes the container's other new namespaces, which that user namespace owns), then the PID
//! namespace, so that ring2 is born in it.
//!
//! A gocker container always runs in a user namespace. Sharing a PID namespace (a Kubernetes pod
//! with `shareProcessNamespace`) therefore means sharing the user namespace that owns it: without
//! a user namespace path, the owner of the PID namespace is joined, and its id maps must be the
//! ones the container asked for (the same default maps, for containers that name none).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use gocker_idmap::IdMaps;
use gocker_ns::Namespace;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::config::InheritedFd;
use crate::initsys::Namespaces;
use crate::{Result, RuntimeError};

/// The opened namespaces; ring1 inherits the descriptors (see [`crate::config::OciMode`]).
#[derive(Debug, Default)]
pub(crate) struct Joins {
    pub user: Option<OwnedFd>,
    pub pid: Option<OwnedFd>,
}

impl Joins {
    pub fn user_fd(&self) -> Option<InheritedFd> {
        self.user.as_ref().map(InheritedFd::of)
    }
    pub fn pid_fd(&self) -> Option<InheritedFd> {
        self.pid.as_ref().map(InheritedFd::of)
    }
}

fn path_of(spec: &Spec, typ: LinuxNamespaceType) -> Option<PathBuf> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .find(|n| n.typ() == typ)
        .and_then(|n| n.path().clone())
}

fn has_mappings(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.uid_mappings().as_ref())
        .is_some_and(|m| !m.is_empty())
}

/// Opens the spec's user and PID namespaces given by path and settles `idmaps` against the
/// joined user namespace: taken from it when `config` names no mappings, otherwise checked equal.
/// The caller must be single-threaded (the maps are read by a child inside the namespace).
pub(crate) fn open(spec: &Spec, idmaps: &mut IdMaps, config: &Path) -> Result<Joins> {
    let user_path = path_of(spec, LinuxNamespaceType::User);
    let pid_path = path_of(spec, LinuxNamespaceType::Pid);
    let err = |msg: String| RuntimeError::Config(format!("{}: {msg}", config.display()));
    let pid = pid_path.as_deref().map(gocker_ns::open_path).transpose()?;
    let (user, what) = match (&user_path, &pid, &pid_path) {
        (Some(p), _, _) => (
            gocker_ns::open_path(p)?,
            format!("user namespace {}", p.display()),
        ),
        (None, Some(fd), Some(p)) => {
            let what = format!("the user namespace owning PID namespace {}", p.display());
            (gocker_ns::owner_userns(fd.as_fd(), &what)?, what)
        }
        _ => return Ok(Joins::default()),
    };
    let own = gocker_ns::open_path(Path::new("/proc/self/ns/user"))?;
    if gocker_ns::same_fd(user.as_fd(), own.as_fd()) {
        return Err(err(format!(
            "{what} is the runtime's own user namespace; a gocker container always runs in a user \
             namespace of its own (a PID namespace is shared together with the user namespace \
             that owns it, so only with another gocker container)"
        )));
    }
    // SAFETY: documented requirement: the caller is single-threaded.
    let text = unsafe {
        gocker_ns::read_inside_userns(
            user.as_fd(),
            &what,
            &[
                "/proc/self/uid_map",
                "/proc/self/gid_map",
                "/proc/self/setgroups",
            ],
        )
    }?;
    let actual = IdMaps::from_proc(&text[0], &text[1], &text[2])?;
    if user_path.is_some() && !has_mappings(spec) {
        *idmaps = actual;
    } else if !actual.same_ids(idmaps) {
        return Err(err(format!(
            "{what} maps uids {:?} and gids {:?}, not the container's uids {:?} and gids {:?}",
            gocker_idmap::render(&actual.uids).trim(),
            gocker_idmap::render(&actual.gids).trim(),
            gocker_idmap::render(&idmaps.uids).trim(),
            gocker_idmap::render(&idmaps.gids).trim(),
        )));
    } else {
        idmaps.deny_setgroups = actual.deny_setgroups;
    }
    Ok(Joins {
        user: Some(user),
        pid,
    })
}

/// ring1: joins the user namespace (then makes `rest`, the container's other new namespaces, which
/// it owns) and the PID namespace of `fds` (descriptor numbers from [`Joins`]), through `sys`
/// ([`crate::initsys`]). ring0 opened them and keeps them open until ring1 reports.
pub(crate) fn enter(
    sys: &mut dyn Namespaces,
    user: Option<InheritedFd>,
    pid: Option<InheritedFd>,
    rest: gocker_ns::NamespaceSet,
) -> Result<()> {
    if let Some(fd) = user {
        sys.setns(fd.raw(), Namespace::User, "the joined user namespace")?;
        sys.unshare(rest.without(Namespace::User))?;
    }
    if let Some(fd) = pid {
        sys.setns(fd.raw(), Namespace::Pid, "the joined PID namespace")?;
    }
    Ok(())
}
