//! `gocker rootfs`: the root filesystems gocker knows, under `/var/lib/gocker/rootfs` (root) or
//! `$XDG_DATA_HOME/gocker/rootfs` (users). `build` makes the Alpine one that `gocker run` uses by
//! default: the official minirootfs at a pinned version, SHA-256 verified, or offline an Alpine-like rootfs from Debian's `busybox-static` and `musl` packages.
//! Built beside the destination and renamed into place, so a half-built rootfs never appears.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

fn step(msg: &str) {
    eprintln!("==> {msg}");
}

fn output(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("spawn {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub const ALPINE_VERSION: &str = "3.20.3";
const ALPINE_URL: &str = "https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/x86_64/alpine-minirootfs-3.20.3-x86_64.tar.gz";
const ALPINE_SHA256: &str = "d4e6fd67dcf75e40c451560ac7265166c2b72a0f38ddc9aae756a7de3d1efa0c";
const MARKER: &str = ".gocker-rootfs.json";

/// The directory holding the rootfs images of the calling user.
pub fn store_dir() -> PathBuf {
    crate::host::data_dir().join("rootfs")
}

/// Builds the rootfs unless present; returns its path.
pub fn ensure(dest: Option<PathBuf>, offline: bool, force: bool) -> Result<PathBuf> {
    let dest = dest.unwrap_or_else(|| store_dir().join("alpine"));
    if dest.join(MARKER).exists() && !force {
        // Older builds lack the mount point for lift (workspace mode): add it.
        let _ = fs::create_dir(dest.join(".gocker"));
        eprintln!(
            "rootfs already present at {} (--force rebuilds)",
            dest.display()
        );
        return Ok(dest);
    }
    // Nothing gocker did not create is ever deleted: an existing destination is replaced only
    // when it is empty or a rootfs gocker built (its marker file).
    let replace = check_dest(&dest)?;
    let parent = dest.parent().context("destination has no parent")?;
    create_dirs_0755(parent)?;
    // A build directory of our own beside the destination: a fresh name, never one that exists.
    let mut n = 0u32;
    let tmp = loop {
        let tmp = parent.join(format!(
            ".{}.tmp-{}-{n}",
            dest.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        match fs::create_dir(&tmp) {
            Ok(()) => break tmp,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e).with_context(|| format!("mkdir {}", tmp.display())),
        }
    };
    let built = build_into(&tmp, &dest, offline, replace);
    if built.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    built
}

/// What an existing `--dest` is: `false` when it does not exist, `true` when it may be replaced
/// (an empty directory, or a rootfs gocker built: it has gocker's marker file); any other
/// directory or file is refused, and left as it is.
fn check_dest(dest: &Path) -> Result<bool> {
    let meta = match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("--dest {}", dest.display())),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        bail!(
            "--dest {}: exists and is not a directory; refusing to replace it (choose a new or empty directory)",
            dest.display()
        );
    }
    if dest.join(MARKER).is_file() {
        return Ok(true);
    }
    let mut entries =
        fs::read_dir(dest).with_context(|| format!("--dest {}: read", dest.display()))?;
    if entries.next().is_some() {
        bail!(
            "--dest {}: the directory is not empty and is not a rootfs gocker built (no {MARKER} in it); \
             refusing to replace it: nothing in it was touched (choose a new or empty directory)",
            dest.display()
        );
    }
    Ok(true)
}

/// Builds the rootfs in `tmp` (ours) and renames it to `dest`, replacing `dest` when `replace`
/// ([`check_dest`]).
fn build_into(tmp: &Path, dest: &Path, offline: bool, replace: bool) -> Result<PathBuf> {
    let tmp = tmp.to_owned();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;

    let offline = offline
        || std::env::var("GOCKER_ROOTFS_OFFLINE")
            .map(|v| v == "1")
            .unwrap_or(false);
    let built = if offline {
        None
    } else {
        match minirootfs(&tmp) {
            Ok(()) => Some(("minirootfs", ALPINE_VERSION.to_owned())),
            Err(e) => {
                eprintln!("official minirootfs unavailable ({e:#}); building the offline busybox+musl rootfs");
                fs::remove_dir_all(&tmp)?;
                fs::create_dir(&tmp)?;
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
                None
            }
        }
    };
    let (source, version) = match built {
        Some(b) => b,
        None => ("offline-busybox-musl", offline_rootfs(&tmp)?),
    };
    // The mount point of lift and its socket in workspace mode (docs/workspace-mode.md), like
    // Gitpod's /.supervisor: the rootfs itself is never written at run time.
    fs::create_dir_all(tmp.join(".gocker"))?;
    fs::set_permissions(tmp.join(".gocker"), fs::Permissions::from_mode(0o755))?;
    // Mount points gocker binds its generated files onto. Where the rootfs cannot be idmapped
    // (e.g. ramfs, or tmpfs before 6.3), container root cannot create them in a root-owned /etc.
    for (file, content) in [
        ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
        ("etc/resolv.conf", ""),
    ] {
        let p = tmp.join(file);
        if fs::symlink_metadata(&p).is_err() {
            fs::write(&p, content).with_context(|| format!("write {}", p.display()))?;
        }
    }
    fs::write(
        tmp.join(MARKER),
        serde_json::to_vec_pretty(&serde_json::json!({"source": source, "version": version}))?,
    )?;
    if replace && dest.exists() {
        // Checked again: only an empty directory or gocker's own rootfs is replaced.
        if check_dest(dest)? {
            fs::remove_dir_all(dest).with_context(|| format!("remove old {}", dest.display()))?;
        }
    }
    fs::rename(&tmp, dest)
        .with_context(|| format!("rename {} -> {}", tmp.display(), dest.display()))?;
    step(&format!(
        "rootfs ready: {} ({source} {version})",
        dest.display()
    ));
    Ok(dest.to_owned())
}

fn create_dirs_0755(p: &Path) -> Result<()> {
    if p.exists() {
        return Ok(());
    }
    if let Some(parent) = p.parent() {
        create_dirs_0755(parent)?;
    }
    fs::create_dir(p).with_context(|| format!("mkdir {}", p.display()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn minirootfs(dir: &Path) -> Result<()> {
    step(&format!("downloading Alpine minirootfs {ALPINE_VERSION}"));
    let data = fetch_verified(ALPINE_URL, ALPINE_SHA256)?;
    unpack_tgz(&data, dir)
}

/// The body of `url` (HTTP or HTTPS), with progress on stderr, refused unless its SHA-256 is
/// `sha256`.
fn fetch_verified(url: &str, sha256: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(300))
        .build();
    let resp = agent.get(url).call().context("download")?; // ureq names the URL
    let total: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
    let mut body = resp.into_reader().take(MAX_DOWNLOAD + 1);
    let (mut data, mut buf, mut shown) = (Vec::new(), vec![0u8; 64 * 1024], 0u64);
    loop {
        let n = body
            .read(&mut buf)
            .with_context(|| format!("download {url}"))?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        if data.len() as u64 > MAX_DOWNLOAD {
            bail!("download {url}: larger than {MAX_DOWNLOAD} bytes, refused");
        }
        // A line per tenth of the size (or per MiB when the server sends none).
        let got = data.len() as u64;
        let every = total.map_or(1 << 20, |t| (t / 10).max(1));
        if got / every > shown / every {
            match total {
                Some(t) => eprintln!("    {} of {} KiB", got / 1024, t / 1024),
                None => eprintln!("    {} KiB", got / 1024),
            }
        }
        shown = got;
    }
    let sum = format!("{:x}", Sha256::digest(&data));
    if sum != sha256 {
        bail!("checksum mismatch for {url}: got {sum}, expected {sha256}");
    }
    Ok(data)
}

/// The largest download `fetch_verified` takes (the minirootfs is ~3.5 MiB).
const MAX_DOWNLOAD: u64 = 256 << 20;

/// Unpacks a gzip-compressed tar into `dir` with its numeric owners (as root) and modes; an
/// entry that would land outside `dir` (`..`, absolute links followed) is refused.
fn unpack_tgz(data: &[u8], dir: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(data));
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(rustix::process::geteuid().is_root());
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    for entry in ar.entries().context("read the tarball")? {
        let mut e = entry.context("read the tarball")?;
        let path = e.path().context("an entry's path")?.into_owned();
        // `unpack_in` refuses `..` and writes through no symlink it made; it says false then.
        if !e
            .unpack_in(dir)
            .with_context(|| format!("unpack {}", path.display()))?
        {
            bail!(
                "unpack: entry {} leaves the rootfs, refused",
                path.display()
            );
        }
    }
    Ok(())
}

/// Path of a file installed by a Debian package, from dpkg's own list of the package's files
/// (`/var/lib/dpkg/info/PKG.list`, or `PKG:ARCH.list` for a multi-arch package).
fn package_file(pkg: &str, suffix: &str) -> Result<PathBuf> {
    package_file_in(Path::new(DPKG_INFO), pkg, suffix)
}

const DPKG_INFO: &str = "/var/lib/dpkg/info";

fn package_file_in(info: &Path, pkg: &str, suffix: &str) -> Result<PathBuf> {
    let plain = info.join(format!("{pkg}.list"));
    let list = match fs::read_to_string(&plain) {
        Ok(l) => l,
        Err(_) => fs::read_dir(info)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.strip_prefix(pkg)
                    .and_then(|r| r.strip_prefix(':'))
                    .is_some_and(|r| r.ends_with(".list") && !r.contains(':'))
            })
            .and_then(|e| fs::read_to_string(e.path()).ok())
            .with_context(|| format!("package {pkg} is not installed"))?,
    };
    list.lines()
        .find(|l| l.ends_with(suffix) && Path::new(l).is_file())
        .map(PathBuf::from)
        .with_context(|| format!("package {pkg} has no file ending in {suffix}"))
}

fn offline_rootfs(root: &Path) -> Result<String> {
    let missing: Vec<&str> = ["busybox-static", "musl"]
        .into_iter()
        .filter(|p| package_file(p, "").is_err())
        .collect();
    if !missing.is_empty() {
        bail!(
            "the offline rootfs needs the Debian packages {} (apt-get install {})",
            missing.join(" and "),
            missing.join(" ")
        );
    }
    step("building the offline Alpine-like rootfs (busybox-static + musl)");
    let busybox = package_file("busybox-static", "/bin/busybox")?;
    let musl = package_file("musl", "libc.so")?;
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "lib", "etc", "dev", "proc", "sys", "run", "mnt",
        "home", "var/log", "var/tmp", "opt", "srv",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::create_dir_all(root.join("tmp"))?;
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::set_permissions(root.join("var/tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::create_dir_all(root.join("root"))?;
    fs::set_permissions(root.join("root"), fs::Permissions::from_mode(0o700))?;
    fs::copy(&busybox, root.join("bin/busybox")).context("copy busybox")?;
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
    fs::copy(&musl, root.join("lib/ld-musl-x86_64.so.1")).context("copy musl loader")?;
    fs::set_permissions(
        root.join("lib/ld-musl-x86_64.so.1"),
        fs::Permissions::from_mode(0o755),
    )?;
    symlink(
        "ld-musl-x86_64.so.1",
        root.join("lib/libc.musl-x86_64.so.1"),
    )?;

    let applets = output(Command::new(&busybox).arg("--list-full"))?;
    let mut n = 0;
    for a in applets
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "bin/busybox")
    {
        let link = root.join(a);
        if link.exists() {
            continue;
        }
        let depth = a.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        symlink(&target, &link).with_context(|| format!("symlink {}", link.display()))?;
        n += 1;
    }
    let version = output(Command::new(&busybox).arg("--help")).unwrap_or_default();
    let version = version
        .lines()
        .next()
        .unwrap_or("busybox")
        .split(" multi-call")
        .next()
        .unwrap_or("busybox")
        .trim()
        .to_owned();
    let files: [(&str, &str); 6] = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"),
        ("etc/group", "root:x:0:root\ntty:x:5:\nwheel:x:10:root\nnogroup:x:65533:\nnobody:x:65534:\n"),
        ("etc/hostname", "localhost\n"),
        ("etc/os-release", "NAME=\"Alpine-like (gocker offline rootfs)\"\nID=alpine-like\nPRETTY_NAME=\"Alpine-like busybox+musl rootfs built by gocker rootfs build\"\n"),
        ("etc/profile", "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='\\h:\\w\\$ '\n"),
        ("etc/shells", "/bin/sh\n/bin/ash\n"),
    ];
    for (p, c) in files {
        fs::write(root.join(p), c)?;
    }
    eprintln!("  {n} busybox applets linked; {version}");
    Ok(version)
}

/// One rootfs image in the store.
#[derive(Debug, serde::Serialize)]
pub struct Image {
    pub name: String,
    pub path: PathBuf,
    pub source: String,
    pub version: String,
}

/// The images in the store (directories with a build marker), by name.
pub fn list() -> Vec<Image> {
    let mut v: Vec<Image> = fs::read_dir(store_dir())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let marker: serde_json::Value =
                serde_json::from_slice(&fs::read(e.path().join(MARKER)).ok()?).ok()?;
            let field = |k: &str| marker[k].as_str().unwrap_or("?").to_owned();
            Some(Image {
                name: e.file_name().to_string_lossy().into_owned(),
                path: e.path(),
                source: field("source"),
                version: field("version"),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Removes the image `name` from the store (only directories gocker built: they carry the marker).
pub fn remove(name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        bail!("rootfs name {name:?}: not a plain name");
    }
    let dir = store_dir().join(name);
    if !dir.join(MARKER).exists() {
        bail!(
            "no rootfs named {name:?} in {} (see `gocker rootfs ls`)",
            store_dir().display()
        );
    }
    fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(dir)
}

/// The tag of the default image made from a rootfs whose marker says `source` and `version`:
/// the Alpine version of the official minirootfs (`3.20.3`), `offline-busybox-1.35.0` for the
/// offline busybox+musl one (its marker's version is busybox's banner), `offline` when that
/// banner has no version in it.
pub fn default_image_tag(source: &str, version: &str) -> String {
    let tag_char = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if source == "minirootfs" && !version.is_empty() && version.chars().all(tag_char) {
        return version.to_owned();
    }
    let busybox = version
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .filter(|v| !v.is_empty() && v.chars().all(tag_char) && v.len() < 64);
    match busybox {
        Some(v) => format!("offline-busybox-{v}"),
        None => "offline".to_owned(),
    }
}

/// Registers the provisioned rootfs `dir` (a build of [`ensure`]: it has gocker's marker) as the
/// default image, `gocker-alpine:TAG` ([`default_image_tag`]) and `gocker-alpine:latest`, in the
/// caller's image store (docs/images.md, "The default image"). A second registration of the same
/// build changes nothing. Progress on stderr; returns the image id.
pub fn register_default(dir: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let marker_path = dir.join(MARKER);
    let marker: serde_json::Value = serde_json::from_slice(
        &fs::read(&marker_path).with_context(|| format!("read {}", marker_path.display()))?,
    )
    .with_context(|| format!("parse {}", marker_path.display()))?;
    let field = |k: &str| marker[k].as_str().unwrap_or_default().to_owned();
    let (source, version) = (field("source"), field("version"));
    let md = fs::metadata(&marker_path)?;
    let created = crate::container_fs::rfc3339(md.mtime());
    // The build's identity: its marker's time to the nanosecond (a `--force` rebuild differs).
    let built = format!("{}.{:09}Z", created.trim_end_matches('Z'), md.mtime_nsec());
    let tag = default_image_tag(&source, &version);
    let image = crate::names::DEFAULT_IMAGE;
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("io.gocker.rootfs.source", source.as_str()),
        ("io.gocker.rootfs.version", version.as_str()),
        ("io.gocker.rootfs.built", built.as_str()),
        (
            crate::container_fs::ROOTFS_PATH_LABEL,
            &dir.display().to_string(),
        ),
    ] {
        labels.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
    let (id, made) =
        crate::container_fs::register_rootfs(dir, MARKER, image, &tag, &labels, &created)
            .with_context(|| format!("register {} as the image {image}:{tag}", dir.display()))?;
    let short = &id.trim_start_matches("sha256:")[..12.min(id.len())];
    if made {
        step(&format!(
            "image {image}:{tag} and {image}:latest ({short}) registered in {}: the default of `gocker run`",
            crate::image_cmds::store_dir().display()
        ));
    } else {
        eprintln!("image {image}:{tag} ({short}) already registered, tagged {image}:latest");
    }
    Ok(id)
}

/// `gocker run gocker-alpine` with no such image in the store: the caller's own provisioned rootfs
/// (in [`store_dir`]), built before `rootfs build` registered it, registered now. `None` when
/// there is none.
pub fn register_own_default() -> Result<Option<String>> {
    let dir = store_dir().join("alpine");
    if !dir.join(MARKER).is_file() {
        return Ok(None);
    }
    eprintln!(
        "gocker: registering the provisioned rootfs {} as the image {}",
        dir.display(),
        crate::names::DEFAULT_IMAGE
    );
    register_default(&dir).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o750);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_entry_type(tar::EntryType::Regular);
            // The raw name: `append_data` itself refuses `..`.
            h.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn unpack_keeps_modes_and_refuses_dotdot() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir(&root).unwrap();
        unpack_tgz(&tgz(&[("etc/motd", b"hi\n")]), &root).unwrap();
        assert_eq!(fs::read(root.join("etc/motd")).unwrap(), b"hi\n");
        let mode = fs::metadata(root.join("etc/motd"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
        let e = unpack_tgz(&tgz(&[("../outside", b"x")]), &root).unwrap_err();
        assert!(format!("{e:#}").contains("../outside"), "{e:#}");
        assert!(!d.path().join("outside").exists());
        assert!(unpack_tgz(b"not a tarball", &root).is_err());
    }

    /// One HTTP/1.0 answer with `body` on 127.0.0.1.
    fn serve_once(body: Vec<u8>) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x.tar.gz", l.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = std::io::Read::read(&mut c, &mut req);
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = std::io::Write::write_all(&mut c, head.as_bytes());
            let _ = std::io::Write::write_all(&mut c, &body);
        });
        url
    }

    #[test]
    fn a_download_is_checked_against_its_sha256() {
        let body = b"the tarball".to_vec();
        let good = format!("{:x}", Sha256::digest(&body));
        assert_eq!(
            fetch_verified(&serve_once(body.clone()), &good).unwrap(),
            body
        );
        let e = fetch_verified(&serve_once(body), &"0".repeat(64)).unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn package_files_come_from_dpkgs_lists() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("busybox");
        fs::write(&bin, "").unwrap();
        fs::write(d.path().join("bb.list"), format!("/.\n{}\n", bin.display())).unwrap();
        fs::write(
            d.path().join("ml:amd64.list"),
            format!("{}\n", bin.display()),
        )
        .unwrap();
        assert_eq!(package_file_in(d.path(), "bb", "/busybox").unwrap(), bin);
        assert_eq!(package_file_in(d.path(), "ml", "busybox").unwrap(), bin);
        let e = package_file_in(d.path(), "nope", "").unwrap_err();
        assert!(e.to_string().contains("nope is not installed"), "{e}");
        assert!(package_file_in(d.path(), "bb", "/libc.so").is_err());
    }
}
