//! The default OCI spec Gocker starts from: docker's defaults for capabilities, mounts, masked and
//! read-only paths, with every namespace new.

use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::process::DEFAULT_PATH;
use crate::{Result, RuntimeError};

/// docker's default capability set.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Masked paths: the OCI defaults plus `/sys/devices/virtual/powercap` (as docker does).
pub fn masked_paths() -> Vec<String> {
    let mut v = oci_spec::runtime::get_default_maskedpaths();
    v.push("/sys/devices/virtual/powercap".into());
    v
}

/// The OCI default mounts without the cgroup v1 mount (a private cgroup2 view comes with cgroup support).
pub fn default_mounts() -> Vec<oci_spec::runtime::Mount> {
    oci_spec::runtime::get_default_mounts()
        .into_iter()
        .filter(|m| m.typ().as_deref() != Some("cgroup"))
        .collect()
}

/// Extra mounts for [`crate::RootMode::HostView`]: private writable `/tmp` and an empty `/run` (so the
/// host's runtime state, e.g. other containers' records, is not visible).
pub fn host_view_mounts() -> Vec<oci_spec::runtime::Mount> {
    [("/tmp", "mode=1777"), ("/run", "mode=755")]
        .into_iter()
        .map(|(dest, mode)| {
            oci_spec::runtime::MountBuilder::default()
                .destination(dest)
                .typ("tmpfs")
                .source("tmpfs")
                .options(vec![
                    "nosuid".into(),
                    "nodev".into(),
                    mode.into(),
                    "size=65536k".into(),
                ])
                .build()
                .expect("all fields set")
        })
        .collect()
}

/// A bind mount of `source` at `destination` with `options` (which say `bind` or `rbind`).
pub(crate) fn bind_mount(
    destination: impl Into<PathBuf>,
    source: impl Into<PathBuf>,
    options: impl IntoIterator<Item = impl Into<String>>,
) -> oci_spec::runtime::Mount {
    oci_spec::runtime::MountBuilder::default()
        .destination(destination.into())
        .typ("bind")
        .source(source.into())
        .options(options.into_iter().map(Into::into).collect::<Vec<String>>())
        .build()
        .expect("all fields set")
}

/// A spec running `args` in `rootfs` as root with docker's defaults and new user, mount, PID, UTS,
/// IPC, network and cgroup namespaces.
pub fn default_spec(rootfs: PathBuf, args: Vec<String>) -> Result<Spec> {
    let err = |e: oci_spec::OciSpecError| RuntimeError::Config(e.to_string());
    let caps: oci_spec::runtime::Capabilities = DEFAULT_CAPS.into_iter().collect();
    let process = ProcessBuilder::default()
        .args(args)
        .env(vec![
            format!("PATH={DEFAULT_PATH}"),
            "HOME=/root".to_string(),
        ])
        .cwd("/")
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(err)?,
        )
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .inheritable(oci_spec::runtime::Capabilities::new())
                .ambient(oci_spec::runtime::Capabilities::new())
                .build()
                .map_err(err)?,
        )
        .no_new_privileges(true)
        .build()
        .map_err(err)?;
    let namespaces = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(err)?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(masked_paths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .build()
        .map_err(err)?;
    SpecBuilder::default()
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(false)
                .build()
                .map_err(err)?,
        )
        .process(process)
        .hostname("gocker")
        .mounts(default_mounts())
        .linux(linux)
        .build()
        .map_err(err)
}
