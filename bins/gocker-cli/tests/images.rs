//! The image commands against a real registry: Debian's `docker-registry` on a random 127.0.0.1
//! port (gocker-storage's `test-support`), fed by `skopeo copy` with a two-layer image built here
//! from the test rootfs (GOCKER_TEST_ROOTFS): layer 1 gzip (the rootfs and 1 MiB of noise), layer
//! 2 zstd (a whiteout, an opaque directory, a hard link and a symlink).
//!
//! Needs the Debian packages docker-registry and skopeo: a missing one fails the test naming it.
//! The tests share the user's image store (docs/images.md), so they take one lock and each
//! removes what it pulled; registries are killed and temp dirs removed on drop.

mod common;

use common::*;
use gocker_storage::test_support::{require_tools, run, Registry};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static LOCK: Mutex<()> = Mutex::new(());

/// The tests of this file one at a time (they share the image store), after checking the tools.
fn serial() -> MutexGuard<'static, ()> {
    require_tools(&[("docker-registry", "docker-registry"), ("skopeo", "skopeo")]);
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The image store of a user, as docs/images.md says (`home`: another user's home directory).
fn store_dir(home: Option<&Path>) -> PathBuf {
    if let Some(h) = home {
        return h.join(".local/share/gocker/storage");
    }
    if is_root() {
        return PathBuf::from("/var/lib/gocker/storage");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".local/share"));
    data.join("gocker/storage")
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}

fn hex(d: &str) -> &str {
    d.trim_start_matches("sha256:")
}

/// docker's sizes (3 significant digits, SI units), as `gocker images` prints them.
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB"];
    let (mut v, mut i) = (bytes as f64, 0);
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as i32 + 1
    };
    let mut s = format!("{v:.*}", (3 - digits).max(0) as usize);
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// The test image as an OCI layout, with what the tests check against.
struct TestImage {
    layout: tempfile::TempDir,
    manifest: String,
    config: String,
    config_bytes: Vec<u8>,
    /// (digest, size) of the compressed layers, lowest first.
    layers: Vec<(String, u64)>,
    /// The uncompressed layer tars (for a docker-archive).
    tars: Vec<Vec<u8>>,
    diff_ids: Vec<String>,
}

impl TestImage {
    fn size(&self) -> u64 {
        self.config_bytes.len() as u64 + self.layers.iter().map(|l| l.1).sum::<u64>()
    }
    fn short(&self, i: usize) -> &str {
        &hex(&self.layers[i].0)[..12]
    }
}

fn put(layout: &Path, data: &[u8]) -> (String, u64) {
    let d = sha256(data);
    fs::write(layout.join("blobs/sha256").join(hex(&d)), data).unwrap();
    (d, data.len() as u64)
}

/// Appends `root/rel` and what is below it, skipping what this user cannot read.
fn add_tree(b: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path) {
    let p = root.join(rel);
    let Ok(md) = fs::symlink_metadata(&p) else {
        return;
    };
    let ft = md.file_type();
    if ft.is_file() && fs::File::open(&p).is_err() {
        return;
    }
    if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
        return;
    }
    b.append_path_with_name(&p, rel)
        .unwrap_or_else(|e| panic!("tar {}: {e}", p.display()));
    if ft.is_dir() {
        let Ok(rd) = fs::read_dir(&p) else { return };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            add_tree(b, root, &rel.join(n));
        }
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64, mode);
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
    let mut h = header(kind, 0, 0o777);
    b.append_link(&mut h, path, target).unwrap();
}

/// An entry with a path the tar crate would refuse to write (`..` components).
fn raw_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
    h.as_mut_bytes()[..100].fill(0);
    h.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// Builds the test image; `unique` goes into both layers, so that no other test's blobs match.
/// `escape`: layer 2 also writes `../../…/ESCAPE` (a hostile layer).
fn build_image(unique: &str, escape: Option<&str>) -> TestImage {
    let layout = tempfile::tempdir().unwrap();
    let l = layout.path();
    fs::create_dir_all(l.join("blobs/sha256")).unwrap();
    fs::write(l.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let root = rootfs_path();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    for top in ["bin", "etc", "lib", "sbin", "usr"] {
        add_tree(&mut b, &root, Path::new(top));
    }
    dir(&mut b, "opt/");
    let mut noise = Vec::with_capacity(1 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ unique.len() as u64;
    while noise.len() < (1 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    file(&mut b, "opt/gocker-noise.bin", &noise, 0o644);
    file(&mut b, "etc/gocker-test-id", unique.as_bytes(), 0o644);
    file(&mut b, "etc/gocker-gone", b"whited out by layer 2\n", 0o644);
    dir(&mut b, "var/");
    dir(&mut b, "var/gocker-opq/");
    file(
        &mut b,
        "var/gocker-opq/old",
        b"hidden by the opaque dir\n",
        0o644,
    );
    let base = b.into_inner().unwrap();

    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "etc/.wh.gocker-gone", b"", 0o644);
    dir(&mut b, "var/gocker-opq/");
    file(&mut b, "var/gocker-opq/.wh..wh..opq", b"", 0o644);
    file(&mut b, "var/gocker-opq/new", b"new\n", 0o644);
    file(
        &mut b,
        "etc/gocker-test-release",
        format!("release {unique}\n").as_bytes(),
        0o644,
    );
    dir(&mut b, "usr/local/bin/");
    file(
        &mut b,
        "usr/local/bin/gocker-tool",
        b"#!/bin/sh\necho tool\n",
        0o755,
    );
    link(
        &mut b,
        tar::EntryType::Link,
        "usr/local/bin/gocker-tool-alias",
        "usr/local/bin/gocker-tool",
    );
    link(
        &mut b,
        tar::EntryType::Symlink,
        "usr/local/bin/gocker-vi",
        "/bin/busybox",
    );
    if let Some(e) = escape {
        raw_file(&mut b, &format!("{}{e}", "../".repeat(12)), b"escaped\n");
    }
    let top = b.into_inner().unwrap();

    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&base).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::stream::encode_all(&top[..], 3).unwrap();
    let l1 = put(l, &gz);
    let l2 = put(l, &zst);
    let diff_ids = vec![sha256(&base), sha256(&top)];
    let created = "2025-06-01T12:00:00Z";
    let cfg = serde_json::json!({
        "created": created,
        "architecture": host_arch(), "os": "linux",
        "config": {
            "User": "root",
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "GOCKER_TEST=images"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hello"],
            "WorkingDir": "/opt",
            "ExposedPorts": {"8080/tcp": {}},
            "Labels": {"org.gocker.test": unique},
            "StopSignal": "SIGINT",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": created, "created_by": "gocker-test layer 1: the test rootfs (GOCKER_TEST_ROOTFS) and 1 MiB of noise"},
            {"created": created, "created_by": "/bin/sh -c #(nop) CMD [\"echo hello\"]", "empty_layer": true},
            {"created": created, "created_by": "gocker-test layer 2: whiteout, opaque, links"},
        ],
    });
    let config_bytes = serde_json::to_vec(&cfg).unwrap();
    let c = put(l, &config_bytes);
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.0, "size": c.1},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l1.0, "size": l1.1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": l2.0, "size": l2.1},
        ],
    });
    let md = put(l, &serde_json::to_vec(&m).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.0, "size": md.1,
                       "annotations": {"org.opencontainers.image.ref.name": "v1"}}],
    });
    fs::write(l.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    TestImage {
        layout,
        manifest: md.0,
        config: c.0,
        config_bytes,
        layers: vec![l1, l2],
        tars: vec![base, top],
        diff_ids,
    }
}

/// A test image pushed to a fresh registry as `gocker-test/NAME:v1`.
struct Pushed {
    img: TestImage,
    reg: Registry,
    /// `127.0.0.1:PORT/gocker-test/NAME`
    repo: String,
}

impl Pushed {
    fn new(tag: &str) -> Pushed {
        Self::with(tag, None)
    }
    fn with(tag: &str, escape: Option<&str>) -> Pushed {
        let name = unique(tag);
        let img = build_image(&name, escape);
        let reg = Registry::start(false);
        reg.push(
            img.layout.path(),
            "v1",
            &format!("gocker-test/{name}:v1"),
            false,
        );
        let repo = format!("{}/gocker-test/{name}", reg.host());
        Pushed { img, reg, repo }
    }
    fn tag(&self) -> String {
        format!("{}:v1", self.repo)
    }
    fn by_digest(&self) -> String {
        format!("{}@{}", self.repo, self.img.manifest)
    }
}

/// Runs gocker as `user` (setpriv) or as this process's user.
fn gu(user: Option<&TestUser>, args: &[&str]) -> Output {
    match user {
        Some(u) => u.gocker(args, &[]).output().unwrap(),
        None => g(args),
    }
}

/// Removes, on drop (also after a failed assertion), the images a test made and what they left
/// in the store (`image prune -f`: unreferenced blobs, layers and interrupted downloads).
struct Cleanup<'a> {
    user: Option<&'a TestUser>,
    names: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = gu(self.user, &["rmi", "-f", n]);
        }
        let _ = gu(self.user, &["image", "prune", "-f"]);
    }
}

/// `gocker images` rows (cells split on runs of 2+ spaces), header first.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

fn rows_of(user: Option<&TestUser>, args: &[&str], repo: &str) -> Vec<Vec<String>> {
    let mut a = vec!["images"];
    a.extend_from_slice(args);
    rows(&ok(&gu(user, &a)))
        .into_iter()
        .skip(1)
        .filter(|r| r[0] == repo)
        .collect()
}

#[track_caller]
fn fails(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {} stderr: {err}",
        stdout(o)
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    err
}

/// Pull by tag and by digest, `images`, `tag`, `image inspect`, `history`, `rmi`, as `user`.
fn pull_and_manage(user: Option<&TestUser>, home: Option<&Path>) {
    let p = Pushed::new("img");
    let img = &p.img;
    let mut clean = Cleanup {
        user,
        names: vec![p.tag(), p.by_digest(), format!("{}:v2", p.repo)],
    };
    let by_tag = p.tag();
    let t0 = Instant::now();
    let out = ok(&gu(user, &["pull", "--tls-verify=false", &by_tag]));
    eprintln!(
        "FIGURE: pull + unpack of the {} test image ({} layers) as {}: {:.3} s",
        human_size(img.size()),
        img.layers.len(),
        user.map(|u| u.name).unwrap_or("the test user"),
        t0.elapsed().as_secs_f64()
    );
    let name = by_tag.split('/').skip(1).collect::<Vec<_>>().join("/");
    let repo_path = name.trim_end_matches(":v1");
    assert!(
        out.starts_with(&format!("v1: Pulling from {repo_path}\n")),
        "{out}"
    );
    for i in 0..2 {
        let id = img.short(i);
        for s in ["Pulling fs layer", "Download complete", "Pull complete"] {
            assert!(
                out.contains(&format!("{id}: {s}\n")),
                "no {id}: {s} in {out}"
            );
        }
    }
    assert!(
        out.contains(&format!("Digest: {}\n", img.manifest)),
        "{out}"
    );
    assert!(
        out.ends_with(&format!(
            "Status: Downloaded newer image for {by_tag}\n{by_tag}\n"
        )),
        "{out}"
    );
    // images: one row, docker's columns, the config digest as id, the stored size.
    let header = rows(&ok(&gu(user, &["images"])))[0].clone();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let r = rows_of(user, &[], &p.repo);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0][1], "v1");
    assert_eq!(r[0][2], &hex(&img.config)[..12]);
    assert!(r[0][3].ends_with(" ago"), "{r:?}");
    assert_eq!(r[0][4], human_size(img.size()));
    let r = rows_of(user, &["--digests", "--no-trunc"], &p.repo);
    assert_eq!(
        r[0][1..4],
        ["v1".to_string(), img.manifest.clone(), img.config.clone()]
    );
    assert!(ok(&gu(user, &["images", "-q"]))
        .lines()
        .any(|l| l == &hex(&img.config)[..12]));
    // The layers are unpacked for this user's mode, with overlayfs whiteouts, in a store
    // private to the user.
    let store = store_dir(home);
    assert_eq!(
        fs::metadata(&store).unwrap().mode() & 0o777,
        0o700,
        "{}",
        store.display()
    );
    let top = store.join("layers/sha256").join(hex(&img.diff_ids[1]));
    let wh = fs::symlink_metadata(top.join("etc/gocker-gone")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0 || wh.is_file() && wh.len() == 0,
        "whiteout of etc/gocker-gone: {wh:?}"
    );
    let rel = fs::metadata(top.join("etc/gocker-test-release")).unwrap();
    let owner = match user {
        Some(u) => u.uid,
        None => rustix::process::geteuid().as_raw(),
    };
    assert_eq!(
        rel.uid(),
        owner,
        "unpacked files belong to the store's user"
    );
    assert_eq!(
        fs::metadata(top.join("usr/local/bin/gocker-tool"))
            .unwrap()
            .ino(),
        fs::metadata(top.join("usr/local/bin/gocker-tool-alias"))
            .unwrap()
            .ino(),
        "hard link kept"
    );
    // Again: nothing downloaded.
    let out = ok(&gu(user, &["pull", &by_tag]));
    assert!(
        out.contains(&format!("{}: Already exists", img.short(0))),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Image is up to date for {by_tag}")),
        "{out}"
    );
    // By digest (a loopback registry needs no --tls-verify=false, as with docker).
    let t0 = Instant::now();
    let out = ok(&gu(user, &["pull", "-q", &p.by_digest()]));
    assert_eq!(out, format!("{}\n", p.by_digest()));
    eprintln!(
        "FIGURE: pull by digest, layers already there: {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    let r = rows_of(user, &["--digests"], &p.repo);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r.iter()
            .any(|r| r[1] == "<none>" && r[2] == img.manifest && r[3] == hex(&img.config)[..12]),
        "{r:?}"
    );
    // tag: both names, one id.
    let v2 = format!("{}:v2", p.repo);
    assert_eq!(ok(&gu(user, &["tag", &by_tag, &v2])), "");
    let r = rows_of(user, &[], &p.repo);
    let tags: Vec<&str> = r.iter().map(|r| r[1].as_str()).collect();
    assert!(tags.contains(&"v1") && tags.contains(&"v2"), "{tags:?}");
    assert!(r.iter().all(|r| r[2] == hex(&img.config)[..12]), "{r:?}");
    // image inspect: docker's JSON.
    let j: serde_json::Value =
        serde_json::from_str(&ok(&gu(user, &["image", "inspect", &v2]))).unwrap();
    let j = &j[0];
    assert_eq!(j["Id"], img.config.as_str());
    let tags = j["RepoTags"].as_array().unwrap();
    assert!(
        tags.contains(&by_tag.clone().into()) && tags.contains(&v2.clone().into()),
        "{j}"
    );
    assert_eq!(
        j["RepoDigests"],
        serde_json::json!([format!("{}@{}", p.repo, img.manifest)])
    );
    let c = &j["Config"];
    assert_eq!(
        c["Env"],
        serde_json::json!(["PATH=/usr/local/bin:/usr/bin:/bin", "GOCKER_TEST=images"])
    );
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo hello"]));
    assert_eq!(c["WorkingDir"], "/opt");
    assert_eq!(c["User"], "root");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    assert!(c["Labels"]["org.gocker.test"].is_string(), "{c}");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(j["Architecture"], host_arch());
    assert_eq!(j["Os"], "linux");
    assert_eq!(j["Created"], "2025-06-01T12:00:00Z");
    assert_eq!(j["Size"], img.size());
    assert_eq!(j["RootFS"]["Type"], "layers");
    assert_eq!(j["RootFS"]["Layers"], serde_json::json!(img.diff_ids));
    let lower = j["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
    assert_eq!(lower.split(':').next().unwrap(), top.display().to_string());
    // history: newest first, docker's columns and truncation.
    let h = ok(&gu(user, &["history", &by_tag]));
    let hr = rows(&h);
    assert_eq!(hr[0], ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    assert_eq!(hr.len(), 4, "{h}");
    assert_eq!(hr[1][0], &hex(&img.config)[..12]);
    assert_eq!(hr[2][0], "<missing>");
    assert!(
        h.contains("gocker-test layer 2: whiteout, opaque, links"),
        "{h}"
    );
    assert!(
        h.contains("gocker-test layer 1: the test rootfs (GOCKER…"),
        "{h}"
    );
    assert!(hr[1].contains(&human_size(img.layers[1].1)), "{h}");
    let h = ok(&gu(user, &["history", "--no-trunc", &by_tag]));
    assert!(h.contains("(GOCKER_TEST_ROOTFS) and 1 MiB of noise"), "{h}");
    // rmi: a tag among others is untagged; the id of a multi-name image needs -f.
    let out = ok(&gu(user, &["rmi", &v2]));
    assert_eq!(out, format!("Untagged: {v2}\n"));
    let short = &hex(&img.config)[..12];
    fails(&gu(user, &["rmi", short]), 125, &["must be forced", short]);
    let out = ok(&gu(user, &["rmi", "-f", short]));
    assert!(out.contains(&format!("Untagged: {by_tag}\n")), "{out}");
    assert!(
        out.contains(&format!("Untagged: {}\n", p.by_digest())),
        "{out}"
    );
    assert!(
        out.ends_with(&format!("Deleted: {}\n", img.config)),
        "{out}"
    );
    assert!(rows_of(user, &[], &p.repo).is_empty());
    assert!(!store.join("blobs/sha256").join(hex(&img.config)).exists());
    assert!(!top.exists(), "the unpacked layer went with the image");
    clean.names.clear();
}

#[test]
fn pull_by_tag_and_by_digest_then_images_tag_inspect_history_rmi() {
    let _l = serial();
    pull_and_manage(None, None);
}

/// As root, the same as the unprivileged user gocker-sub (its own store under its home); in
/// the rootless phases the test itself is unprivileged and does the same.
#[test]
fn pull_by_tag_and_by_digest_as_an_unprivileged_user() {
    let _l = serial();
    if is_root() {
        let u = TestUser::get("gocker-sub");
        let home = PathBuf::from(format!("/home/{}", u.name));
        pull_and_manage(Some(&u), Some(&home));
    } else {
        assert_ne!(rustix::process::geteuid().as_raw(), 0);
        pull_and_manage(None, None);
    }
}

#[test]
fn save_rmi_load_round_trip_keeps_the_manifest_digest_docker_archive_and_podman_load() {
    let _l = serial();
    let p = Pushed::new("save");
    let img = &p.img;
    let darc = format!("{}:darc", p.repo);
    let mut clean = Cleanup {
        user: None,
        names: vec![p.tag(), darc.clone()],
    };
    let by_tag = p.tag();
    ok(&g(&["pull", "-q", &by_tag]));
    let before = rows_of(None, &["--digests", "--no-trunc"], &p.repo);
    assert_eq!(before[0][2], img.manifest);
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("img.tar");
    let ts = tar.display().to_string();
    ok(&g(&["save", "-o", &ts, &by_tag]));
    // An OCI layout tar that skopeo reads, with the manifest unchanged.
    // (skopeo's oci-archive: transport chowns what it untars to the tar's uid 0, which only
    // root may: other users give it the layout unpacked by tar.)
    let source = if is_root() {
        format!("oci-archive:{ts}")
    } else {
        let d = dir.path().join("layout");
        fs::create_dir(&d).unwrap();
        run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&d));
        format!("oci:{}", d.display())
    };
    let raw = run(Command::new("skopeo").args(["inspect", "--raw", &source]));
    assert_eq!(sha256(raw.as_bytes()), img.manifest);
    let out = ok(&g(&["rmi", &by_tag]));
    assert!(out.contains(&format!("Deleted: {}", img.config)), "{out}");
    assert!(rows_of(None, &[], &p.repo).is_empty());
    let out = ok(&g(&["load", "-i", &ts]));
    assert_eq!(out, format!("Loaded image: {by_tag}\n"));
    assert_eq!(rows_of(None, &["--digests", "--no-trunc"], &p.repo), before);
    // Through stdout and stdin.
    let piped = dir.path().join("piped.tar");
    let st = gocker(&["save", &by_tag])
        .stdout(fs::File::create(&piped).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    let names: Vec<String> = tar::Archive::new(fs::File::open(&piped).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.contains(&"index.json".to_string()) && names.contains(&"oci-layout".to_string()),
        "save to stdout writes an OCI layout: {names:?}"
    );
    ok(&g(&["rmi", &by_tag]));
    let o = gocker(&["load"])
        .stdin(fs::File::open(&piped).unwrap())
        .output()
        .unwrap();
    assert_eq!(ok(&o), format!("Loaded image: {by_tag}\n"));
    assert_eq!(rows_of(None, &["--digests", "--no-trunc"], &p.repo), before);
    // A docker-archive (docker save's manifest.json, config, uncompressed layer tars).
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    };
    let cfg_name = format!("{}.json", hex(&img.config));
    add(&cfg_name, &img.config_bytes);
    add("l1/layer.tar", &img.tars[0]);
    add("l2/layer.tar", &img.tars[1]);
    let mj = serde_json::json!([{"Config": cfg_name, "RepoTags": [darc], "Layers": ["l1/layer.tar", "l2/layer.tar"]}]);
    add("manifest.json", &serde_json::to_vec(&mj).unwrap());
    let darc_tar = dir.path().join("docker.tar");
    fs::write(&darc_tar, b.into_inner().unwrap()).unwrap();
    let out = ok(&g(&["load", "-i", &darc_tar.display().to_string()]));
    assert_eq!(out, format!("Loaded image: {darc}\n"));
    let r = rows_of(None, &["--no-trunc"], &p.repo);
    assert!(
        r.iter().any(|r| r[1] == "darc" && r[2] == img.config),
        "same config, same id: {r:?}"
    );
    // save --format docker-archive: uncompressed layers under their diff_ids, the same config
    // (so the same id) after a round trip; skopeo reads it.
    let dsave = dir.path().join("saved-docker.tar");
    let ds = dsave.display().to_string();
    ok(&g(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        &ds,
        &by_tag,
    ]));
    let names: Vec<String> = tar::Archive::new(fs::File::open(&dsave).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    for d in &img.diff_ids {
        assert!(
            names.contains(&format!("{}/layer.tar", hex(d))),
            "{names:?}"
        );
    }
    assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
    let si: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("docker-archive:{ds}"),
    ])))
    .unwrap();
    assert_eq!(si["rootfs"]["diff_ids"], serde_json::json!(img.diff_ids));
    ok(&g(&["rmi", &by_tag]));
    assert_eq!(
        ok(&g(&["load", "-i", &ds])),
        format!("Loaded image: {by_tag}\n")
    );
    let r = rows_of(None, &["--no-trunc"], &p.repo);
    assert!(
        r.iter().any(|r| r[1] == "v1" && r[2] == img.config),
        "{r:?}"
    );
    ok(&g(&["rmi", &by_tag]));
    // podman (root: the gocker-oci tests' podman) loads both kinds of archive gocker saves.
    if is_root() {
        require_tools(&[("podman", "podman")]);
        let pname = format!("localhost/gocker-test/{}:v1", unique("podman"));
        ok(&g(&["load", "-i", &ts]));
        ok(&g(&["tag", &by_tag, &pname]));
        let pt = dir.path().join("podman.tar");
        ok(&g(&["save", "-o", &pt.display().to_string(), &pname]));
        let pd = dir.path().join("podman-docker.tar");
        ok(&g(&[
            "save",
            "--format",
            "docker-archive",
            "-o",
            &pd.display().to_string(),
            &pname,
        ]));
        ok(&g(&["rmi", &pname, &by_tag]));
        for (archive, digest) in [(&pt, Some(&img.manifest)), (&pd, None)] {
            let o = run(Command::new("podman").arg("load").arg("-i").arg(archive));
            assert!(o.contains(&pname), "podman load: {o}");
            let inspect = run(Command::new("podman").args([
                "image",
                "inspect",
                "--format",
                "{{.Id}} {{.Digest}}",
                &pname,
            ]));
            let _ = Command::new("podman").args(["rmi", "-f", &pname]).output();
            assert!(
                inspect.starts_with(hex(&img.config)),
                "podman sees the same id: {inspect}"
            );
            if let Some(d) = digest {
                assert!(
                    inspect.contains(d.as_str()),
                    "and the same manifest: {inspect}"
                );
            }
        }
    }
    // Not an archive at all.
    let junk = dir.path().join("junk.tar");
    fs::write(&junk, b"not a tar").unwrap();
    fails(
        &g(&["load", "-i", &junk.display().to_string()]),
        125,
        &["junk.tar"],
    );
    ok(&g(&["rmi", &darc]));
    clean.names.clear();
}

/// A container whose state directory records the image (the `image` file the `run IMAGE`
/// path writes: docs/images.md) keeps `rmi` from removing the image's last name unless `-f`.
#[test]
fn rmi_refuses_an_image_a_container_uses_unless_forced() {
    let _l = serial();
    let p = Pushed::new("inuse");
    let by_tag = p.tag();
    let _clean = Cleanup {
        user: None,
        names: vec![by_tag.clone()],
    };
    ok(&g(&["pull", "-q", &by_tag]));
    let name = unique("gocker-img-inuse");
    let r = rootfs();
    let id = ok(&g(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sleep",
        "60",
    ]));
    fs::write(state_dir().join(id.trim()).join("image"), &p.img.config).unwrap();
    fails(
        &g(&["rmi", &by_tag]),
        125,
        &["must force", &name, &hex(&p.img.config)[..12]],
    );
    assert_eq!(rows_of(None, &[], &p.repo).len(), 1, "still listed");
    // Another name may go: the image stays.
    let v2 = format!("{}:v2", p.repo);
    ok(&g(&["tag", &by_tag, &v2]));
    assert_eq!(ok(&g(&["rmi", &v2])), format!("Untagged: {v2}\n"));
    ok(&g(&["rm", "-f", &name]));
    let out = ok(&g(&["rmi", &by_tag]));
    assert!(out.contains(&format!("Deleted: {}", p.img.config)), "{out}");
}

/// `gocker images` without the CREATED column (relative times move on).
fn listing() -> Vec<Vec<String>> {
    rows(&ok(&g(&["images", "--digests", "--no-trunc"])))
        .into_iter()
        .map(|mut r| {
            if r.len() == 6 {
                r.remove(4);
            }
            r
        })
        .collect()
}

#[test]
fn tampered_missing_or_hostile_blob_fails_naming_image_and_blob_and_lists_nothing_new() {
    let _l = serial();
    let p = Pushed::new("tamper");
    let _clean = Cleanup {
        user: None,
        names: vec![p.tag()],
    };
    let before = listing();
    let (bad, _) = &p.img.layers[0];
    let f = p.reg.blob_file(bad);
    let mut data = fs::read(&f).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&f, &data).unwrap();
    let by_tag = p.tag();
    let err = fails(&g(&["pull", &by_tag]), 125, &[&by_tag, bad]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert_eq!(
        listing(),
        before,
        "gocker images lists exactly what it listed before"
    );
    let store = store_dir(None);
    assert!(!store.join("blobs/sha256").join(hex(bad)).exists());
    assert!(!store.join("tmp/partial").join(hex(bad)).exists());
    // A manifest pointing at a blob the registry does not have.
    let q = Pushed::new("missing");
    let _clean2 = Cleanup {
        user: None,
        names: vec![q.tag()],
    };
    let (gone, _) = &q.img.layers[1];
    fs::remove_dir_all(q.reg.blob_file(gone).parent().unwrap()).unwrap();
    let err = fails(&g(&["pull", &q.tag()]), 125, &[&q.tag(), gone]);
    assert!(err.contains("missing"), "{err}");
    assert_eq!(listing(), before);
    // A layer writing ../../tmp/x: the blobs verify, the unpack refuses it, and the image that
    // pull had recorded is taken out of the list again.
    let escape = format!("tmp/{}", unique("gocker-escape"));
    let h = Pushed::with("hostile", Some(&escape));
    let _clean3 = Cleanup {
        user: None,
        names: vec![h.tag()],
    };
    let (layer, _) = &h.img.layers[1];
    let err = fails(
        &g(&["pull", &h.tag()]),
        125,
        &[&h.tag(), layer, "tmp/gocker-escape"],
    );
    eprintln!("hostile layer refused: {err}");
    assert_eq!(listing(), before, "{err}");
    assert!(
        !Path::new("/").join(&escape).exists(),
        "nothing written outside the store"
    );
    let layers: Vec<String> = fs::read_dir(store.join("layers/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !layers.contains(&hex(&h.img.diff_ids[1]).to_string()),
        "no layer dir for it"
    );
}

#[test]
fn unknown_images_exit_1_with_dockers_message() {
    let _l = serial();
    let name = unique("gocker-test-nope");
    let msg = format!("Error: No such image: {name}:latest");
    fails(&g(&["rmi", &name]), 1, &[&msg]);
    fails(&g(&["image", "rm", "-f", &name]), 1, &[&msg]);
    fails(&g(&["tag", &name, "gocker-test-x:y"]), 1, &[&msg]);
    fails(&g(&["history", &name]), 1, &[&msg]);
    fails(&g(&["save", "-o", "/dev/null", &name]), 1, &[&msg]);
    let o = g(&["image", "inspect", &name]);
    fails(&o, 1, &[&msg]);
    assert_eq!(stdout(&o).trim(), "[]");
    // Bad input is a gocker error (125) naming it.
    fails(&g(&["pull", "UPPER/Case"]), 125, &["UPPER/Case"]);
    fails(
        &g(&["pull", "--platform", "linux", "x"]),
        125,
        &["--platform \"linux\""],
    );
}

/// Forwards to `upstream`; each connection's answers stall after `fast` bytes until dropped.
struct SlowProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream, limit: Option<u64>, stop: Arc<AtomicBool>) {
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut sent = 0u64;
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        let n = match limit {
            Some(l) if sent + n as u64 > l => (l - sent) as usize,
            _ => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if limit.is_some_and(|l| sent >= l) {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl SlowProxy {
    fn start(upstream: u16, fast: u64) -> SlowProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let Ok(u) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            continue;
                        };
                        let (c2, u2) = (c.try_clone().unwrap(), u.try_clone().unwrap());
                        let (s1, s2) = (s.clone(), s.clone());
                        std::thread::spawn(move || pipe(c, u, None, s1));
                        std::thread::spawn(move || pipe(u2, c2, Some(fast), s2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SlowProxy {
            port,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn sigkill_in_the_middle_of_a_layer_lists_nothing_and_the_next_pull_resumes() {
    let _l = serial();
    let p = Pushed::new("kill");
    let proxy = SlowProxy::start(p.reg.port(), 600 * 1024);
    let path = p.tag().split_once('/').unwrap().1.to_string();
    let via = format!("127.0.0.1:{}/{path}", proxy.port);
    let _clean = Cleanup {
        user: None,
        names: vec![p.tag(), via.clone()],
    };
    let (big, big_size) = &p.img.layers[0];
    assert!(*big_size > 1 << 20, "layer 1 is {big_size} bytes");
    let partial = store_dir(None).join("tmp/partial").join(hex(big));
    let logs = tempfile::tempdir().unwrap();
    let mut child = gocker(&["pull", "--tls-verify=false", &via])
        .stdout(fs::File::create(logs.path().join("out")).unwrap())
        .stderr(fs::File::create(logs.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let size = || fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while size() < 256 * 1024 {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "gocker pull ended before the middle of the layer: {st}: {}",
                fs::read_to_string(logs.path().join("err")).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gocker pull never got 256 KiB into layer {big}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();
    drop(proxy);
    let kept = size();
    let all_partial_before: u64 = fs::read_dir(partial.parent().unwrap())
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert!(
        kept >= 256 * 1024 && kept < *big_size,
        "partial download kept: {kept} of {big_size}"
    );
    let all = ok(&g(&["images"]));
    assert!(
        !all.contains(&p.repo) && !all.contains(&format!("127.0.0.1:{}/", p.reg.port())),
        "a killed pull lists nothing: {all}"
    );
    let all_via = ok(&g(&["images", "--no-trunc"]));
    assert!(
        !all_via.contains(&via.trim_end_matches(":v1").to_string()),
        "{all_via}"
    );
    let o = g(&["--debug", "pull", &p.tag()]);
    ok(&o);
    let err = stderr(&o);
    let resumed: u64 = err
        .split("bytes_resumed=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no bytes_resumed= in --debug output: {err}"));
    // Every partial download counts: with parallel downloads another layer may have begun too
    // (partials of other pulls in the same store are not resumed by this one).
    assert!(
        resumed >= kept && resumed <= all_partial_before,
        "the next pull reused the partial downloads: resumed {resumed}, layer {big} kept {kept}, all partials {all_partial_before}"
    );
    assert!(
        stdout(&o).contains(&format!("{}: Resuming download", p.img.short(0))),
        "{}",
        stdout(&o)
    );
    assert!(!partial.exists(), "the partial became the blob");
    assert_eq!(rows_of(None, &[], &p.repo).len(), 1);
}

#[test]
fn an_unreachable_registry_fails_quickly_naming_it() {
    let _l = serial();
    // TEST-NET-1: never routed; the connect times out or is refused at once.
    let t0 = Instant::now();
    fails(
        &g(&["pull", "192.0.2.1/gocker-test/x:v1"]),
        125,
        &["registry 192.0.2.1", "192.0.2.1/gocker-test/x:v1"],
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    // Docker Hub short names normalise; this machine has no route to Docker Hub (where it has,
    // the pull works and is undone).
    let t0 = Instant::now();
    let o = g(&["pull", "-q", "alpine"]);
    if o.status.success() {
        assert_eq!(stdout(&o), "docker.io/library/alpine:latest\n");
        ok(&g(&["rmi", "alpine"]));
    } else {
        fails(&o, 125, &["alpine:latest", "registry docker.io"]);
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    }
}

#[test]
fn help_names_the_store_and_prune_asks_first() {
    let _l = serial();
    for cmd in [
        &["pull", "--help"][..],
        &["images", "--help"],
        &["image", "ls", "--help"],
        &["rmi", "--help"],
        &["tag", "--help"],
        &["image", "inspect", "--help"],
        &["history", "--help"],
        &["image", "prune", "--help"],
        &["save", "--help"],
        &["load", "--help"],
    ] {
        let out = ok(&g(cmd));
        assert!(
            out.contains("/var/lib/gocker/storage") && out.contains("gocker/storage"),
            "{cmd:?}: {out}"
        );
    }
    let before = listing();
    let mut c = gocker(&["image", "prune", "-a"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let o = c.wait_with_output().unwrap();
    let out = ok(&o);
    assert!(
        out.contains("WARNING! This will remove all images without at least one container associated to them.")
            && out.contains("Are you sure you want to continue? [y/N]"),
        "{out}"
    );
    assert_eq!(listing(), before, "answering no removes nothing");
    let out = ok(&g(&["image", "prune", "-f"]));
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(listing(), before, "prune without -a keeps every image");
}

/// The files (path, kind, mode, size, content hash) of a directory tree, to compare before and
/// after runs: no run may change an image's layers.
fn snapshot(root: &Path) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(root.join(rel)) else {
            return;
        };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                sha256(&fs::read(&p).unwrap())
            } else {
                String::new()
            };
            out.push(format!(
                "{} {:o} {} {}",
                r.display(),
                m.mode(),
                m.size(),
                what
            ));
            if m.is_dir() {
                walk(root, &r, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// `run IMAGE`: the image's Entrypoint, Cmd, Env and WorkingDir apply, its layers (whiteout,
/// opaque directory) are what the container sees, and what a run deletes is back in the next
/// run, with the layer directories in the store unchanged.
fn run_on_image(user: Option<&TestUser>, home: Option<&Path>) {
    let p = Pushed::new("run");
    let _clean = Cleanup {
        user,
        names: vec![p.tag()],
    };
    let image = p.tag();
    ok(&gu(user, &["pull", "-q", "--tls-verify=false", &image]));
    let layers: Vec<PathBuf> = p
        .img
        .diff_ids
        .iter()
        .map(|d| store_dir(home).join("layers/sha256").join(hex(d)))
        .collect();
    let before: Vec<_> = layers.iter().map(|l| snapshot(l)).collect();
    assert!(
        before.iter().all(|s| !s.is_empty()),
        "layers unpacked: {layers:?}"
    );

    let out = ok(&gu(user, &["run", "--rm", "--network", "none", &image]));
    assert_eq!(out.trim(), "hello", "Entrypoint + Cmd of the image");
    let script = "pwd; echo $GOCKER_TEST; cat /etc/gocker-test-release; \
                  test ! -e /etc/gocker-gone && echo gone; ls /var/gocker-opq; \
                  gocker-tool-alias";
    let out = ok(&gu(
        user,
        &["run", "--rm", "--network", "none", &image, script],
    ));
    let release = format!(
        "release {}",
        image.rsplit('/').next().unwrap().trim_end_matches(":v1")
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["/opt", "images", release.as_str(), "gone", "new", "tool"],
        "WorkingDir, Env, the top layer, its whiteout, opaque dir and hard link"
    );
    // -w and -e override the image's; the command line replaces Cmd only.
    let out = ok(&gu(
        user,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-w",
            "/etc",
            "-e",
            "GOCKER_TEST=ours",
            &image,
            "pwd; echo $GOCKER_TEST",
        ],
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["/etc", "ours"]);

    let out = gu(
        user,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "rm /bin/vi && echo removed",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "removed");
    let out = ok(&gu(
        user,
        &["run", "--rm", "--network", "none", &image, "ls /bin/vi"],
    ));
    assert_eq!(
        out.trim(),
        "/bin/vi",
        "the next run has the image's /bin/vi again"
    );
    let after: Vec<_> = layers.iter().map(|l| snapshot(l)).collect();
    assert_eq!(before, after, "the image's layer directories are unchanged");
}

#[test]
fn run_on_an_image_applies_its_config_and_never_changes_it() {
    let _l = serial();
    run_on_image(None, None);
}

#[test]
fn run_on_an_image_as_an_unprivileged_user() {
    let _l = serial();
    if is_root() {
        let u = TestUser::get("gocker-sub");
        let home = PathBuf::from(format!("/home/{}", u.name));
        run_on_image(Some(&u), Some(&home));
    } else {
        run_on_image(None, None);
    }
}
