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

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use gocker_idmap::IdMaps;
use gocker_ns::Namespace;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::config::{InheritedFd, JoinedFds};
use crate::initsys::Namespaces;
use crate::{ContainerConfig, Result, RuntimeError};

/// The opened namespaces; ring1 inherits the descriptors (see [`crate::config::OciMode`] and
/// [`crate::config::JoinedFds`]).
#[derive(Debug, Default)]
pub(crate) struct Joins {
    pub user: Option<OwnedFd>,
    pub pid: Option<OwnedFd>,
    /// `gocker run` only: network, IPC, UTS and cgroup namespaces, which ring1 joins after the
    /// user namespace that owns them.
    pub others: Vec<(Namespace, OwnedFd)>,
}

impl Joins {
    pub fn user_fd(&self) -> Option<InheritedFd> {
        self.user.as_ref().map(InheritedFd::of)
    }
    pub fn pid_fd(&self) -> Option<InheritedFd> {
        self.pid.as_ref().map(InheritedFd::of)
    }
    /// The numbers under which ring1 finds them.
    pub fn inherited(&self) -> JoinedFds {
        JoinedFds {
            user: self.user_fd(),
            pid: self.pid_fd(),
            others: self
                .others
                .iter()
                .map(|(ns, fd)| (*ns, InheritedFd::of(fd)))
                .collect(),
        }
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
    let take = user_path.is_some() && !has_mappings(spec);
    settle_maps(user.as_fd(), &what, idmaps, take, err)?;
    Ok(Joins {
        user: Some(user),
        pid,
        others: Vec::new(),
    })
}

/// Refuses the runtime's own user namespace, then settles `idmaps` against the maps of `user`:
/// taken from it (`take`), otherwise checked equal. Single-threaded callers only.
fn settle_maps(
    user: BorrowedFd<'_>,
    what: &str,
    idmaps: &mut IdMaps,
    take: bool,
    err: impl Fn(String) -> RuntimeError,
) -> Result<()> {
    let own = gocker_ns::open_path(Path::new("/proc/self/ns/user"))?;
    if gocker_ns::same_fd(user, own.as_fd()) {
        return Err(err(format!(
            "{what} is the runtime's own user namespace; a gocker container always runs in a user \
             namespace of its own (a PID namespace is shared together with the user namespace \
             that owns it, so only with another gocker container)"
        )));
    }
    // SAFETY: documented requirement: the caller is single-threaded.
    let text = unsafe {
        gocker_ns::read_inside_userns(
            user,
            what,
            &[
                "/proc/self/uid_map",
                "/proc/self/gid_map",
                "/proc/self/setgroups",
            ],
        )
    }?;
    let actual = IdMaps::from_proc(&text[0], &text[1], &text[2])?;
    if take {
        *idmaps = actual;
    } else if !actual.same_ids(idmaps) {
        let show = |m: &[gocker_idmap::IdMap]| gocker_idmap::render(m).trim().replace('\n', ", ");
        return Err(err(format!(
            "{what} maps uids {:?} and gids {:?}, not the container's uids {:?} and gids {:?}",
            show(&actual.uids),
            show(&actual.gids),
            show(&idmaps.uids),
            show(&idmaps.gids),
        )));
    } else {
        idmaps.deny_setgroups = actual.deny_setgroups;
    }
    Ok(())
}

/// `gocker run` (not OCI mode): opens every namespace `cfg.spec` gives by path, for ring1 to join
/// ([`enter`]), and records their numbers in `cfg.joined`. Sharing any namespace of another
/// container means sharing the user namespace that owns it (as a pod does): without a user
/// namespace path, the owner of the first joined namespace is joined, and every joined namespace
/// must belong to it. The id maps are that user namespace's, which must map the same ids as
/// `cfg.idmaps`. A mount namespace is never joined: the container's mount tree is its own.
/// The caller must be single-threaded.
pub(crate) fn open_for_run(cfg: &mut ContainerConfig) -> Result<Joins> {
    let err = |msg: String| RuntimeError::Config(msg);
    let mut joins = Joins::default();
    let mut user_path = None;
    let mut first = None;
    for n in cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let Some(path) = n.path() else { continue };
        let ns = Namespace::from(n.typ());
        let fd = match n.typ() {
            LinuxNamespaceType::Mount => {
                return Err(err(format!(
                    "joining an existing mount namespace ({}) is not supported: a container's \
                     mount tree is always its own",
                    path.display()
                )))
            }
            LinuxNamespaceType::User => {
                user_path = Some(path.clone());
                continue;
            }
            _ => gocker_ns::open_path(path)?,
        };
        let what = format!("the {} namespace {}", ns_name(ns), path.display());
        first.get_or_insert(what.clone());
        if ns == Namespace::Pid {
            joins.pid = Some(fd);
        } else {
            joins.others.push((ns, fd));
        }
    }
    let user = match (&user_path, &first) {
        (Some(p), _) => gocker_ns::open_path(p)?,
        (None, Some(_)) => {
            let fd = joins
                .pid
                .as_ref()
                .or(joins.others.first().map(|(_, fd)| fd))
                .expect("a namespace was opened");
            gocker_ns::owner_userns(fd.as_fd(), "a joined namespace")?
        }
        (None, None) => return Ok(joins),
    };
    let what = match (&user_path, &first) {
        (Some(p), _) => format!("user namespace {}", p.display()),
        (None, Some(f)) => format!("the user namespace owning {f}"),
        (None, None) => unreachable!("returned above"),
    };
    // Each joined namespace must belong to that user namespace: ring1 joins it as root there.
    let owned: Vec<(Namespace, &OwnedFd)> = joins
        .pid
        .iter()
        .map(|fd| (Namespace::Pid, fd))
        .chain(joins.others.iter().map(|(ns, fd)| (*ns, fd)))
        .collect();
    for (ns, fd) in owned {
        let owner = gocker_ns::owner_userns(fd.as_fd(), "a joined namespace")?;
        if !gocker_ns::same_fd(owner.as_fd(), user.as_fd()) {
            return Err(err(format!(
                "the joined {} namespace does not belong to {what}: namespaces of containers in \
                 different user namespaces cannot be combined",
                ns_name(ns)
            )));
        }
    }
    settle_maps(user.as_fd(), &what, &mut cfg.idmaps, false, err)?;
    joins.user = Some(user);
    cfg.joined = joins.inherited();
    Ok(joins)
}

fn ns_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::User => "user",
        Namespace::Mount => "mount",
        Namespace::Pid => "PID",
        Namespace::Net => "network",
        Namespace::Ipc => "IPC",
        Namespace::Uts => "UTS",
        Namespace::Cgroup => "cgroup",
        _ => "other",
    }
}

/// ring1: joins the user namespace, then the namespaces it owns (`gocker run`), then makes `rest`,
/// the container's other new namespaces, then joins the PID namespace of `fds` (descriptor
/// numbers from [`Joins`]), through `sys` ([`crate::initsys`]). ring0 opened them and keeps them
/// open until ring1 reports.
pub(crate) fn enter(
    sys: &mut dyn Namespaces,
    fds: &JoinedFds,
    rest: gocker_ns::NamespaceSet,
) -> Result<()> {
    if let Some(fd) = fds.user {
        sys.setns(fd.raw(), Namespace::User, "the joined user namespace")?;
        for (ns, fd) in &fds.others {
            sys.setns(fd.raw(), *ns, joined_what(*ns))?;
        }
        sys.unshare(rest.without(Namespace::User))?;
    }
    if let Some(fd) = fds.pid {
        sys.setns(fd.raw(), Namespace::Pid, "the joined PID namespace")?;
    }
    Ok(())
}

fn joined_what(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Net => "the joined network namespace",
        Namespace::Ipc => "the joined IPC namespace",
        Namespace::Uts => "the joined UTS namespace",
        Namespace::Cgroup => "the joined cgroup namespace",
        _ => "a joined namespace",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initsys::{test_config, Recording};
    use gocker_ns::NamespaceSet;

    fn fd(n: i32) -> InheritedFd {
        InheritedFd::of(&n)
    }

    #[test]
    fn run_joins_the_user_namespace_then_the_ones_it_owns_then_unshares_then_pid() {
        let fds = JoinedFds {
            user: Some(fd(10)),
            pid: Some(fd(11)),
            others: vec![(Namespace::Net, fd(12)), (Namespace::Ipc, fd(13))],
        };
        let rest = NamespaceSet::EMPTY
            .with(Namespace::User)
            .with(Namespace::Mount)
            .with(Namespace::Uts)
            .with(Namespace::Cgroup);
        let mut rec = Recording::default();
        enter(&mut rec, &fds, rest).unwrap();
        let unshare = format!("unshare({})", rest.without(Namespace::User));
        assert_eq!(
            rec.log,
            [
                "setns(user)".to_owned(),
                format!("setns({})", Namespace::Net),
                format!("setns({})", Namespace::Ipc),
                unshare,
                "setns(pid)".to_owned(),
            ]
        );
        // Nothing joined: nothing done (ring1 was forked into its namespaces).
        let mut rec = Recording::default();
        enter(&mut rec, &JoinedFds::default(), rest).unwrap();
        assert!(rec.log.is_empty(), "{:?}", rec.log);
    }

    #[test]
    fn the_joined_descriptors_are_oci_modes_or_gocker_runs() {
        let mut cfg = test_config();
        cfg.joined = JoinedFds {
            user: Some(fd(20)),
            pid: None,
            others: vec![(Namespace::Uts, fd(21))],
        };
        assert_eq!(cfg.joined_fds(), cfg.joined);
        // OCI mode: its user and PID namespaces only (the creating process joined the others).
        cfg.oci = Some(crate::config::OciMode {
            exec_fifo_fd: fd(7),
            preserve_fds: 0,
            seccomp_agent_fd: None,
            userns_fd: Some(fd(10)),
            pidns_fd: Some(fd(11)),
            foreign_joins: 0,
        });
        assert_eq!(
            cfg.joined_fds(),
            JoinedFds {
                user: Some(fd(10)),
                pid: Some(fd(11)),
                others: Vec::new(),
            }
        );
    }
}
