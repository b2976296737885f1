//! `run` flags that map straight onto the OCI spec, with docker's names and syntax (issue 16):
//! `--ulimit TYPE=SOFT[:HARD]` (`process.rlimits`), `--sysctl KEY=VALUE` (`linux.sysctl`, checked
//! by the runtime against the container's own namespaces), `--shm-size SIZE` (the `/dev/shm`
//! tmpfs), `--group-add GROUP` (`process.user.additionalGids`, names through the container's
//! /etc/group), and `--cidfile FILE` (the container's id, written when it is created). Also the
//! byte sizes every size flag takes.

use std::io::Write;
use std::path::Path;

use oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType, Spec};

use crate::failure::{usage, Failure};

/// docker's byte sizes: a number with an optional b, k, m, g suffix (powers of 1024); `-1` is
/// returned as is (unlimited, where the flag allows it).
pub(crate) fn parse_bytes(flag: &str, s: &str) -> Result<i64, Failure> {
    let bad = || usage(format!("{flag} {s:?}: expected a size such as 512m or 1g"));
    if s == "-1" {
        return Ok(-1);
    }
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last() {
        Some('b') => (&t[..t.len() - 1], 1),
        Some('k') => (&t[..t.len() - 1], 1 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if n <= 0.0 {
        return Err(bad());
    }
    Ok((n * mult as f64) as i64)
}

/// The rlimit names docker's `--ulimit` takes (go-units `ulimitNameMapping`).
const ULIMITS: [(&str, PosixRlimitType); 16] = [
    ("as", PosixRlimitType::RlimitAs),
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

/// One `--ulimit TYPE=SOFT[:HARD]`: the hard limit defaults to the soft one; `-1` is unlimited.
fn ulimit(s: &str) -> Result<(PosixRlimitType, u64, u64), Failure> {
    let names = || {
        ULIMITS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| usage(format!("--ulimit {s:?}: expected TYPE=SOFT[:HARD]")))?;
    let typ = ULIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            usage(format!(
                "--ulimit {s:?}: unknown type {name:?} ({})",
                names()
            ))
        })?;
    let value = |v: &str| -> Result<u64, Failure> {
        match v {
            "-1" | "unlimited" => Ok(u64::MAX),
            v => v.parse().map_err(|_| {
                usage(format!(
                    "--ulimit {s:?}: {v:?} is not a number (or -1 for unlimited)"
                ))
            }),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (value(a)?, value(b)?),
        None => (value(values)?, value(values)?),
    };
    if soft > hard {
        return Err(usage(format!(
            "--ulimit {s:?}: the soft limit must be less than or equal to the hard limit"
        )));
    }
    Ok((typ, soft, hard))
}

/// Applies `--ulimit`, `--sysctl`, `--shm-size` and `--group-add` to `spec`. `group` resolves a
/// group name through the container's /etc/group.
pub(crate) fn apply(
    a: &crate::cli::RunArgs,
    spec: &mut Spec,
    group: &dyn Fn(&str) -> Option<u32>,
) -> Result<(), Failure> {
    if !a.ulimit.is_empty() {
        let process = spec
            .process_mut()
            .as_mut()
            .expect("a run spec has a process");
        let mut limits = process.rlimits().clone().unwrap_or_default();
        for u in &a.ulimit {
            let (typ, soft, hard) = ulimit(u)?;
            limits.retain(|r| r.typ() != typ);
            limits.push(
                PosixRlimitBuilder::default()
                    .typ(typ)
                    .soft(soft)
                    .hard(hard)
                    .build()
                    .map_err(|e| usage(format!("--ulimit {u:?}: {e}")))?,
            );
        }
        process.set_rlimits(Some(limits));
    }
    if !a.group_add.is_empty() {
        let process = spec
            .process_mut()
            .as_mut()
            .expect("a run spec has a process");
        let user = process.user_mut();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        for g in &a.group_add {
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => group(g).ok_or_else(|| {
                    usage(format!(
                        "--group-add {g:?}: no group {g:?} in the container's /etc/group (numeric ids need no entry)"
                    ))
                })?,
            };
            if !gids.contains(&gid) {
                gids.push(gid);
            }
        }
        user.set_additional_gids(Some(gids));
    }
    let linux = spec.linux_mut().as_mut().expect("a run spec has linux");
    if !a.sysctl.is_empty() {
        let mut sysctl = linux.sysctl().clone().unwrap_or_default();
        for s in &a.sysctl {
            match s.split_once('=') {
                Some((k, v)) if !k.is_empty() && !k.contains(['/', ' ']) => {
                    sysctl.insert(k.to_owned(), v.to_owned());
                }
                _ => {
                    return Err(usage(format!(
                        "--sysctl {s:?}: expected KEY=VALUE (e.g. net.ipv4.ip_forward=1)"
                    )))
                }
            }
        }
        linux.set_sysctl(Some(sysctl));
    }
    if let Some(size) = &a.shm_size {
        let bytes = parse_bytes("--shm-size", size)?;
        if bytes <= 0 {
            return Err(usage(format!(
                "--shm-size {size:?}: must be a positive size"
            )));
        }
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        let shm = mounts
            .iter_mut()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .ok_or_else(|| usage("--shm-size: the container has no /dev/shm mount"))?;
        let mut options: Vec<String> = shm
            .options()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| !o.starts_with("size="))
            .collect();
        options.push(format!("size={bytes}"));
        shm.set_options(Some(options));
        spec.set_mounts(Some(mounts));
    }
    Ok(())
}

/// `--mount type=bind|volume|tmpfs,...` (docker's long form) as the `-v` or `--tmpfs` value it
/// means, so that both spellings go through one parser (and named volumes through one copy-up):
/// keys `type`, `source`/`src`, `target`/`destination`/`dst`, `readonly`/`ro`, `volume-nocopy`,
/// `tmpfs-size`, `tmpfs-mode`. Unlike `-v`, a bind source must exist (docker's rule).
pub(crate) enum MountFlag {
    Volume(String),
    Tmpfs(String),
}

/// Moves every `--mount` of `a` into its `-v` or `--tmpfs` list (`run` and `create`).
pub(crate) fn expand_mounts(a: &mut crate::cli::RunArgs) -> Result<(), Failure> {
    for m in std::mem::take(&mut a.mounts) {
        match mount(&m)? {
            MountFlag::Volume(v) => a.volumes.push(v),
            MountFlag::Tmpfs(t) => a.tmpfs.push(t),
        }
    }
    Ok(())
}

pub(crate) fn mount(m: &str) -> Result<MountFlag, Failure> {
    let bad = |why: String| usage(format!("--mount {m:?}: {why}"));
    let (mut typ, mut src, mut dst, mut ro, mut nocopy) = ("volume", None, None, false, false);
    let mut tmpfs_opts = Vec::new();
    for field in m.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let flag = |v: Option<&str>| -> Result<bool, Failure> {
            match v {
                None | Some("true") | Some("1") => Ok(true),
                Some("false") | Some("0") => Ok(false),
                Some(o) => Err(bad(format!("{k}={o}: expected true or false"))),
            }
        };
        match (k, v) {
            ("type", Some(t @ ("bind" | "volume" | "tmpfs"))) => typ = t,
            ("type", Some(t)) => return Err(bad(format!("type {t:?}: bind, volume or tmpfs"))),
            ("source" | "src", Some(s)) if !s.is_empty() => src = Some(s),
            ("target" | "destination" | "dst", Some(d)) if !d.is_empty() => dst = Some(d),
            ("readonly" | "ro", v) => ro = flag(v)?,
            ("volume-nocopy", v) => nocopy = flag(v)?,
            ("tmpfs-size", Some(s)) => {
                tmpfs_opts.push(format!("size={}", parse_bytes("--mount tmpfs-size", s)?))
            }
            ("tmpfs-mode", Some(md)) if u32::from_str_radix(md, 8).is_ok() => {
                tmpfs_opts.push(format!("mode={md}"))
            }
            _ => return Err(bad(format!("unknown or empty field {field:?}"))),
        }
    }
    let dst = dst.ok_or_else(|| bad("no target (target=/path)".into()))?;
    match typ {
        "tmpfs" => {
            if src.is_some() {
                return Err(bad("a tmpfs mount has no source".into()));
            }
            if ro {
                tmpfs_opts.push("ro".into());
            }
            Ok(MountFlag::Tmpfs(if tmpfs_opts.is_empty() {
                dst.to_owned()
            } else {
                format!("{dst}:{}", tmpfs_opts.join(","))
            }))
        }
        _ if !tmpfs_opts.is_empty() => Err(bad("tmpfs-* fields need type=tmpfs".into())),
        "bind" => {
            let src = src.ok_or_else(|| bad("a bind mount needs source=/host/path".into()))?;
            if !Path::new(src).exists() {
                return Err(bad(format!("bind source path does not exist: {src}")));
            }
            if nocopy {
                return Err(bad("volume-nocopy needs type=volume".into()));
            }
            Ok(MountFlag::Volume(format!(
                "{src}:{dst}:{}",
                if ro { "ro" } else { "rw" }
            )))
        }
        _ => {
            let src = src.ok_or_else(|| {
                bad("anonymous volumes are not supported: name one (source=NAME)".into())
            })?;
            if src.starts_with('/') || src.starts_with('.') {
                return Err(bad(format!(
                    "{src:?} is a path: use type=bind for host paths"
                )));
            }
            let mode = match (ro, nocopy) {
                (true, true) => {
                    return Err(bad(
                        "readonly and volume-nocopy together are not supported".into()
                    ))
                }
                (true, false) => ":ro",
                (false, true) => ":nocopy",
                (false, false) => "",
            };
            Ok(MountFlag::Volume(format!("{src}:{dst}{mode}")))
        }
    }
}

/// `--cidfile FILE`: made before the container (refused when it exists, as docker: a file left by
/// another container), holding the container's id; [`CidFile::keep`] once the container exists,
/// otherwise dropping it removes the file again.
pub(crate) struct CidFile {
    path: std::path::PathBuf,
    keep: bool,
}

impl CidFile {
    pub(crate) fn create(path: &Path, id: &str) -> Result<CidFile, Failure> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => usage(format!(
                    "--cidfile {}: the file exists: make sure the other container is not running, or remove the file",
                    path.display()
                )),
                _ => usage(format!("--cidfile {}: {e}", path.display())),
            })?;
        let c = CidFile {
            path: path.to_owned(),
            keep: false,
        };
        f.write_all(id.as_bytes())
            .map_err(|e| usage(format!("--cidfile {}: {e}", path.display())))?;
        Ok(c)
    }

    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_as_docker_writes_them() {
        assert_eq!(
            ulimit("nofile=512:1024").ok().map(|(_, s, h)| (s, h)),
            Some((512, 1024))
        );
        assert_eq!(
            ulimit("core=-1").ok().map(|(_, s, h)| (s, h)),
            Some((u64::MAX, u64::MAX))
        );
        assert!(ulimit("nofile=2048:1024").is_err(), "soft above hard");
        assert!(ulimit("nofiles=1").is_err(), "unknown name");
        assert!(ulimit("nofile").is_err(), "no value");
        assert!(ulimit("nofile=many").is_err());
    }

    #[test]
    fn mount_means_the_v_or_tmpfs_value() {
        let v = |m: &str| match mount(m) {
            Ok(MountFlag::Volume(v)) => format!("v {v}"),
            Ok(MountFlag::Tmpfs(t)) => format!("t {t}"),
            Err(_) => "err".into(),
        };
        assert_eq!(
            v("type=bind,source=/tmp,target=/data,readonly"),
            "v /tmp:/data:ro"
        );
        assert_eq!(v("type=bind,src=/tmp,dst=/data"), "v /tmp:/data:rw");
        assert_eq!(v("type=volume,source=cache,target=/c"), "v cache:/c");
        assert_eq!(
            v("source=cache,target=/c,volume-nocopy"),
            "v cache:/c:nocopy"
        );
        assert_eq!(
            v("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777"),
            "t /t:size=1048576,mode=1777"
        );
        assert_eq!(v("type=bind,source=/no/such/dir,target=/d"), "err");
        assert_eq!(v("type=volume,target=/c"), "err", "anonymous");
        assert_eq!(v("type=volume,source=/abs,target=/c"), "err");
        assert_eq!(v("type=tmpfs,source=x,target=/t"), "err");
        assert_eq!(v("type=nfs,target=/t"), "err");
        assert_eq!(v("type=bind,source=/tmp"), "err", "no target");
        assert_eq!(v("type=bind,source=/tmp,target=/d,bogus=1"), "err");
    }

    #[test]
    fn sizes_take_docker_suffixes() {
        assert_eq!(parse_bytes("--shm-size", "1m").ok(), Some(1 << 20));
        assert_eq!(parse_bytes("--shm-size", "64k").ok(), Some(64 << 10));
        assert_eq!(parse_bytes("--shm-size", "1.5g").ok(), Some(3 << 29));
        assert!(parse_bytes("--shm-size", "0").is_err());
        assert!(parse_bytes("--shm-size", "big").is_err());
    }
}
