//! Against a real registry on 127.0.0.1: Debian's `docker-registry` (the CNCF distribution
//! registry), started and killed by each test, fed by `skopeo copy` from an OCI layout built here.
//!
//! Needs the Debian packages docker-registry, skopeo, apache2-utils (htpasswd) and openssl.
//! A missing tool fails the test with the package to install, unless
//! GOCKER_STORAGE_SKIP_REGISTRY=1 is set.

mod common;

use common::*;
use gocker_storage::{
    ClientConfig, Credentials, LayerProgress, Reference, RegistryClient, StorageError, Store,
    UnpackOptions,
};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn tools_or_skip() -> bool {
    if std::env::var("GOCKER_STORAGE_SKIP_REGISTRY").as_deref() == Ok("1") {
        eprintln!("GOCKER_STORAGE_SKIP_REGISTRY=1: registry test skipped");
        return false;
    }
    for (tool, package) in [
        ("docker-registry", "docker-registry"),
        ("skopeo", "skopeo"),
        ("htpasswd", "apache2-utils"),
        ("openssl", "openssl"),
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` not found: install the Debian package `{package}` (apt-get install docker-registry skopeo apache2-utils openssl), or set GOCKER_STORAGE_SKIP_REGISTRY=1 to skip"
        );
    }
    true
}

// The registry (docker-registry on 127.0.0.1, optionally TLS + htpasswd) is the crate's
// `test-support` module, shared with the CLI's image tests (bins/gocker-cli/tests/images.rs).
#[path = "../src/test_support.rs"]
#[allow(dead_code)]
mod test_support;
use test_support::{run, Registry};

/// The test image: layer 1 (gzip) a small base system plus an incompressible 1 MiB file, layer 2
/// (zstd) a whiteout, an opaque directory, a hard link and a symlink.
struct TestImage {
    layout: tempfile::TempDir,
    manifest_digest: String,
    index_digest: String,
    config_amd64: String,
    layers: Vec<(String, u64)>,
}

fn put(layout: &Path, data: &[u8]) -> (String, u64) {
    let d = sha256(data);
    fs::write(
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
        data,
    )
    .unwrap();
    (d, data.len() as u64)
}

fn build_image() -> TestImage {
    let layout = tempfile::tempdir().unwrap();
    let l = layout.path();
    fs::create_dir_all(l.join("blobs/sha256")).unwrap();
    fs::write(l.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut noise = Vec::with_capacity(1 << 20);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while noise.len() < (1 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let base = RawTar::new()
        .dir("bin/", 0o755)
        .file("bin/busybox", b"#!/bin/true busybox\n", 0o755)
        .hardlink("bin/sh", "bin/busybox")
        .dir("etc/", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/shadow", b"root:*:19000::::::\n", 0o640)
        .dir("usr/lib/", 0o755)
        .file("usr/lib/libc.so", b"libc", 0o755)
        .symlink("lib", "usr/lib")
        .file("var/cache/old/a", b"hidden by the opaque dir", 0o644)
        .file("opt/noise.bin", &noise, 0o644)
        .finish();
    let top = RawTar::new()
        .file("etc/.wh.shadow", b"", 0o644)
        .dir("var/cache/old/", 0o755)
        .file("var/cache/old/.wh..wh..opq", b"", 0o644)
        .file("var/cache/old/b", b"new", 0o644)
        .file("usr/bin/tool", b"tool", 0o755)
        .hardlink("usr/bin/tool-alias", "usr/bin/tool")
        .symlink("usr/bin/vi", "/bin/busybox")
        .finish();
    let l1 = put(l, &gzip(&base));
    let l2 = put(l, &zstd(&top));
    let diff_ids = [sha256(&base), sha256(&top)];
    let mut config_amd64 = String::new();
    let mut manifests = Vec::new();
    let mut manifest_digest = String::new();
    for arch in ["amd64", "arm64"] {
        let cfg = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let c = put(l, serde_json::to_vec(&cfg).unwrap().as_slice());
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.0, "size": c.1},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l1.0, "size": l1.1},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": l2.0, "size": l2.1},
            ],
        });
        let md = put(l, serde_json::to_vec(&m).unwrap().as_slice());
        if arch == "amd64" {
            config_amd64 = c.0.clone();
            manifest_digest = md.0.clone();
        }
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.0, "size": md.1,
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let multi = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
    });
    let multi = put(l, serde_json::to_vec(&multi).unwrap().as_slice());
    // index.json: "v1" → the amd64 manifest, "multi" → the two-platform index.
    let amd = &manifests[0];
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd["digest"], "size": amd["size"],
             "annotations": {"org.opencontainers.image.ref.name": "v1"}},
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": multi.0, "size": multi.1,
             "annotations": {"org.opencontainers.image.ref.name": "multi"}},
        ],
    });
    fs::write(l.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    TestImage {
        layout,
        manifest_digest,
        index_digest: multi.0,
        config_amd64,
        layers: vec![l1, l2],
    }
}

fn client(reg: &Registry, f: impl FnOnce(&mut ClientConfig)) -> RegistryClient {
    let mut c = ClientConfig {
        auth: gocker_storage::AuthConfig { files: vec![] },
        ..ClientConfig::default()
    };
    if reg.tls.is_none() {
        c.insecure_registries.push(reg.host());
    }
    f(&mut c);
    RegistryClient::new(c)
}

/// Check the unpacked layers and, as root, the overlay view they make together.
fn verify_unpacked(store: &Store, r: &Reference, opts: &UnpackOptions) {
    let dirs = store.unpack_image(r, opts).unwrap();
    assert_eq!(dirs.len(), 2);
    let (l1, l2) = (&dirs[0], &dirs[1]);
    assert_eq!(
        fs::read(l1.join("etc/passwd")).unwrap(),
        b"root:x:0:0:root:/root:/bin/sh\n"
    );
    assert_eq!(
        fs::metadata(l1.join("bin/sh")).unwrap().ino(),
        fs::metadata(l1.join("bin/busybox")).unwrap().ino()
    );
    assert_eq!(fs::read_link(l1.join("lib")).unwrap(), Path::new("usr/lib"));
    assert_eq!(
        fs::metadata(l1.join("opt/noise.bin")).unwrap().len(),
        1 << 20
    );
    let wh = fs::symlink_metadata(l2.join("etc/shadow")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0:0 char device"
    );
    assert_eq!(
        getxattr(&l2.join("var/cache/old"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    if !opts.rootless {
        assert_eq!(
            getxattr(&l2.join("var/cache/old"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
    }
    assert_eq!(
        fs::metadata(l2.join("usr/bin/tool")).unwrap().ino(),
        fs::metadata(l2.join("usr/bin/tool-alias")).unwrap().ino()
    );
    assert_eq!(
        fs::read_link(l2.join("usr/bin/vi")).unwrap(),
        Path::new("/bin/busybox")
    );
    if is_root() && !opts.rootless {
        let mnt = tempfile::tempdir().unwrap();
        let o =
            std::ffi::CString::new(format!("lowerdir={}:{}", l2.display(), l1.display())).unwrap();
        rustix::mount::mount(
            "overlay",
            mnt.path(),
            "overlay",
            rustix::mount::MountFlags::RDONLY,
            Some(o.as_c_str()),
        )
        .expect("mount overlayfs of the pulled layers");
        let m = mnt.path();
        let view = (
            m.join("etc/passwd").exists(),
            m.join("etc/shadow").exists(),
            m.join("var/cache/old/a").exists(),
            m.join("var/cache/old/b").exists(),
            m.join("usr/bin/tool").exists(),
        );
        rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH).unwrap();
        assert_eq!(
            view,
            (true, false, false, true, true),
            "(passwd, shadow, old/a, old/b, tool)"
        );
    }
}

#[test]
fn plain_http_pull_by_tag_by_digest_and_from_a_multi_arch_index() {
    if !tools_or_skip() {
        return;
    }
    let img = build_image();
    let reg = Registry::start(false);
    reg.push(img.layout.path(), "v1", "test/img:v1", false);
    reg.push(img.layout.path(), "multi", "test/multi:v1", true);
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    let c = client(&reg, |_| {});

    // By tag.
    let by_tag = Reference::parse(&format!("{}/test/img:v1", reg.host())).unwrap();
    let events = std::sync::Mutex::new(Vec::<LayerProgress>::new());
    let progress = |p: &LayerProgress| {
        events.lock().unwrap().push(p.clone());
        Ok(())
    };
    let pulled = c.pull(&store, &by_tag, Some(&progress)).unwrap();
    assert_eq!(pulled.record.manifest.to_string(), img.manifest_digest);
    assert_eq!(pulled.config.to_string(), img.config_amd64);
    let total: u64 = img.layers.iter().map(|l| l.1).sum();
    assert!(
        pulled.bytes_fetched >= total,
        "{} < {total}",
        pulled.bytes_fetched
    );
    let ev = events.into_inner().unwrap();
    for (d, size) in &img.layers {
        assert!(
            ev.iter()
                .any(|e| e.blob.to_string() == *d && e.done && e.downloaded == *size),
            "progress reported {d} done"
        );
    }
    let list = store.list_images().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].reference, by_tag.to_string());
    assert_eq!(list[0].config.to_string(), img.config_amd64);
    verify_unpacked(
        &store,
        &by_tag,
        &UnpackOptions {
            rootless: false,
            xattr_whiteouts: false,
        },
    );

    // By digest, into a fresh store, unpacked the rootless way.
    let sd2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(sd2.path()).unwrap();
    let by_digest =
        Reference::parse(&format!("{}/test/img@{}", reg.host(), img.manifest_digest)).unwrap();
    let p2 = c.pull(&store2, &by_digest, None).unwrap();
    assert_eq!(p2.record.manifest.to_string(), img.manifest_digest);
    verify_unpacked(
        &store2,
        &by_digest,
        &UnpackOptions {
            rootless: true,
            xattr_whiteouts: false,
        },
    );
    // Again into the first store: every layer reused, nothing downloaded.
    let p3 = c.pull(&store, &by_digest, None).unwrap();
    assert_eq!((p3.layers_reused, p3.bytes_fetched), (2, 0));

    // A digest the registry does not have.
    let bogus = Reference::parse(&format!(
        "{}/test/img@sha256:{}",
        reg.host(),
        "0".repeat(64)
    ))
    .unwrap();
    let e = c.pull(&store2, &bogus, None).unwrap_err();
    assert!(matches!(e, StorageError::ManifestUnknown { .. }), "{e:?}");
    assert!(e.to_string().contains("test/img@sha256:0000"), "{e}");
    let e = c
        .pull(&store2, &by_tag.with_tag("nope").unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no manifest nope"), "{e}");

    // Multi-arch index: this platform's manifest is chosen, the index is kept with the ref.
    let multi = Reference::parse(&format!("{}/test/multi:v1", reg.host())).unwrap();
    let pm = c.pull(&store, &multi, None).unwrap();
    assert_eq!(
        pm.record.index.as_ref().map(|d| d.to_string()),
        Some(img.index_digest.clone())
    );
    assert_eq!(pm.config.to_string(), img.config_amd64);
    let arm = client(&reg, |c| {
        c.platform = ("linux".into(), "s390x".into(), None)
    });
    let e = arm.pull(&store2, &multi, None).unwrap_err().to_string();
    assert!(
        e.contains("linux/s390x") && e.contains("linux/amd64") && e.contains("linux/arm64"),
        "{e}"
    );

    // rmi + gc: the image's blobs and layer dirs go once no ref needs them.
    store.remove_ref(&by_tag).unwrap();
    store.remove_ref(&by_digest).unwrap();
    let kept = store.gc().unwrap();
    assert!(
        kept.blobs_removed.is_empty(),
        "multi still needs every layer: {kept:?}"
    );
    store.remove_ref(&multi).unwrap();
    let gone = store.gc().unwrap();
    assert!(gone.blobs_removed.len() >= 4, "{gone:?}");
    assert_eq!(gone.layer_dirs_removed.len(), 2);
    assert!(store.list_images().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(sd.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn tampered_blob_is_refused_naming_image_and_blob_and_nothing_is_listed() {
    if !tools_or_skip() {
        return;
    }
    let img = build_image();
    let reg = Registry::start(false);
    reg.push(img.layout.path(), "v1", "test/img:v1", false);
    let (bad, _) = &img.layers[1];
    let f = reg.blob_file(bad);
    let mut data = fs::read(&f).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&f, &data).unwrap();
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:v1", reg.host())).unwrap();
    let e = client(&reg, |_| {}).pull(&store, &r, None).unwrap_err();
    assert!(matches!(e, StorageError::DigestMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&r.to_string()) && msg.contains(bad.as_str()),
        "{msg}"
    );
    assert!(store.list_images().unwrap().is_empty());
    let bad_digest = gocker_storage::Digest::parse(bad).unwrap();
    assert!(!store.has_blob(&bad_digest), "the bad blob is not stored");
    let partial = sd
        .path()
        .join("tmp/partial")
        .join(bad.trim_start_matches("sha256:"));
    assert!(!partial.exists(), "nor kept for a resume");
    // The other layer may have been stopped midway: its partial download is kept, and is
    // never listed or used as a blob.
    for e in fs::read_dir(sd.path().join("blobs/sha256")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert_ne!(format!("sha256:{name}"), *bad);
    }
}

#[test]
fn manifest_pointing_at_a_missing_blob_is_refused_naming_image_and_blob() {
    if !tools_or_skip() {
        return;
    }
    let img = build_image();
    let reg = Registry::start(false);
    reg.push(img.layout.path(), "v1", "test/img:v1", false);
    let (missing, _) = &img.layers[0];
    fs::remove_dir_all(reg.blob_file(missing).parent().unwrap()).unwrap();
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:v1", reg.host())).unwrap();
    let e = client(&reg, |_| {}).pull(&store, &r, None).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&r.to_string()) && msg.contains(missing.as_str()),
        "{msg}"
    );
    assert!(matches!(e, StorageError::BlobMissing { .. }), "{e:?}");
    assert!(store.list_images().unwrap().is_empty());
}

#[test]
fn interrupted_download_is_resumed_with_a_range_request() {
    if !tools_or_skip() {
        return;
    }
    let img = build_image();
    let reg = Registry::start(false);
    reg.push(img.layout.path(), "v1", "test/img:v1", false);
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:v1", reg.host())).unwrap();
    let (big, big_size) = img.layers[0].clone();
    assert!(
        big_size > 600 * 1024,
        "the gzip layer is large enough to interrupt"
    );
    let c = client(&reg, |c| c.max_parallel_downloads = 1);
    let stop_at = 300 * 1024;
    let interrupt = |p: &LayerProgress| {
        if p.blob.to_string() == big && p.downloaded >= stop_at && !p.done {
            return Err("test interrupt".to_string());
        }
        Ok(())
    };
    let e = c.pull(&store, &r, Some(&interrupt)).unwrap_err();
    assert!(matches!(e, StorageError::Interrupted { .. }), "{e:?}");
    assert!(e.to_string().contains(&big), "{e}");
    assert!(
        store.list_images().unwrap().is_empty(),
        "no partial image listed"
    );
    let partial = sd
        .path()
        .join("tmp/partial")
        .join(big.trim_start_matches("sha256:"));
    let kept = fs::metadata(&partial).unwrap().len();
    assert!(
        kept >= stop_at && kept < big_size,
        "partial download kept: {kept}"
    );

    let fetched_big = AtomicU64::new(0);
    let watch = |p: &LayerProgress| {
        if p.blob.to_string() == big {
            assert_eq!(
                p.resumed_from, kept,
                "continued where the first pull stopped"
            );
            fetched_big.store(p.downloaded - p.resumed_from, Ordering::Relaxed);
        }
        Ok(())
    };
    let pulled = c.pull(&store, &r, Some(&watch)).unwrap();
    assert_eq!(pulled.bytes_resumed, kept);
    let second = fetched_big.load(Ordering::Relaxed);
    assert_eq!(second, big_size - kept, "only the rest was fetched");
    assert!(second < big_size);
    assert!(!partial.exists());
    assert_eq!(store.list_images().unwrap().len(), 1);
    verify_unpacked(&store, &r, &UnpackOptions::for_current_user());
}

#[test]
fn tls_with_self_signed_ca_and_htpasswd_basic_auth() {
    if !tools_or_skip() {
        return;
    }
    let img = build_image();
    let reg = Registry::start(true);
    reg.push(img.layout.path(), "v1", "test/img:v1", false);
    let ca = reg.tls.clone().unwrap();
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:v1", reg.host())).unwrap();

    // No CA: the certificate is refused.
    let e = client(&reg, |_| {})
        .pull(&store, &r, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&reg.host()) && e.to_lowercase().contains("certificate"),
        "{e}"
    );

    // CA but no credentials: refused by the registry, named.
    let e = client(&reg, |c| c.extra_ca_file = Some(ca.clone()))
        .pull(&store, &r, None)
        .unwrap_err();
    assert!(matches!(e, StorageError::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains(&reg.host()), "{e}");

    // Wrong password from an explicit credential.
    let e = client(&reg, |c| {
        c.extra_ca_file = Some(ca.clone());
        c.credentials.insert(
            reg.host(),
            Credentials {
                username: "gocker".into(),
                password: "wrong".into(),
            },
        );
    })
    .pull(&store, &r, None)
    .unwrap_err();
    assert!(matches!(e, StorageError::Auth { .. }), "{e:?}");
    assert!(store.list_images().unwrap().is_empty());

    // Credentials from $XDG_RUNTIME_DIR/containers/auth.json (podman's location).
    let xdg = tempfile::tempdir().unwrap();
    fs::create_dir(xdg.path().join("containers")).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("gocker:s3cret-pw");
    fs::write(
        xdg.path().join("containers/auth.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let xdg_path = xdg.path().to_path_buf();
    let files = gocker_storage::AuthConfig::locations_from(|k| {
        (k == "XDG_RUNTIME_DIR").then(|| xdg_path.clone())
    });
    let c = client(&reg, |c| {
        c.extra_ca_file = Some(ca.clone());
        c.auth = files;
    });
    let pulled = c.pull(&store, &r, None).unwrap();
    assert_eq!(pulled.record.manifest.to_string(), img.manifest_digest);
    verify_unpacked(
        &store,
        &r,
        &UnpackOptions {
            rootless: false,
            xattr_whiteouts: false,
        },
    );

    // tls_verify=false for this registry: no CA needed, credentials still used.
    let sd2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(sd2.path()).unwrap();
    let by_digest =
        Reference::parse(&format!("{}/test/img@{}", reg.host(), img.manifest_digest)).unwrap();
    client(&reg, |c| {
        c.insecure_registries.push(reg.host());
        c.credentials.insert(
            reg.host(),
            Credentials {
                username: "gocker".into(),
                password: "s3cret-pw".into(),
            },
        );
    })
    .pull(&store2, &by_digest, None)
    .unwrap();
    verify_unpacked(
        &store2,
        &by_digest,
        &UnpackOptions {
            rootless: true,
            xattr_whiteouts: false,
        },
    );
}

#[test]
fn two_concurrent_pulls_into_one_store_and_a_saved_layout_that_skopeo_accepts() {
    if !tools_or_skip() {
        return;
    }
    let img = build_image();
    let reg = Registry::start(false);
    reg.push(img.layout.path(), "v1", "test/img:v1", false);
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    let r = Reference::parse(&format!("{}/test/img:v1", reg.host())).unwrap();
    let r2 = r.with_tag("again").unwrap();
    reg.push(img.layout.path(), "v1", "test/img:again", false);
    // Two pulls of the same blobs at once: the per-blob lock makes one wait for the other.
    let results: Vec<_> = std::thread::scope(|sc| {
        let a = sc.spawn(|| client(&reg, |_| {}).pull(&store, &r, None));
        let b = sc.spawn(|| client(&reg, |_| {}).pull(&store, &r2, None));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let total: u64 = img.layers.iter().map(|l| l.1).sum();
    let mut fetched = 0;
    for res in results {
        fetched += res.unwrap().bytes_fetched;
    }
    assert!(
        fetched < 2 * total,
        "the layers were downloaded once, not twice ({fetched} bytes)"
    );
    assert_eq!(store.list_images().unwrap().len(), 2);
    verify_unpacked(
        &store,
        &r,
        &UnpackOptions {
            rootless: false,
            xattr_whiteouts: false,
        },
    );

    // gocker's OCI layout export is read by skopeo and pushed back; the round trip pulls.
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("saved");
    gocker_storage::archive::save_oci_dir(&store, std::slice::from_ref(&r), &saved).unwrap();
    let mut c = Command::new("skopeo");
    c.args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
    ])
    .arg(format!("oci:{}:v1", saved.display()))
    .arg(format!("docker://{}/test/saved:v1", reg.host()));
    run(&mut c);
    let sd2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(sd2.path()).unwrap();
    let back = Reference::parse(&format!("{}/test/saved:v1", reg.host())).unwrap();
    let p = client(&reg, |_| {}).pull(&store2, &back, None).unwrap();
    assert_eq!(
        p.record.manifest.to_string(),
        img.manifest_digest,
        "byte-identical manifest"
    );
}

/// `SIGKILL` of a pulling process in the middle of a layer: nothing is listed, the partial
/// download stays, and the next pull completes by resuming it. The test binary re-runs this
/// test as the child that gets killed.
#[test]
fn sigkill_during_a_pull_lists_nothing_and_the_next_pull_resumes() {
    const CHILD: &str = "GOCKER_STORAGE_PULL_CHILD";
    if let Ok(spec) = std::env::var(CHILD) {
        let mut it = spec.splitn(3, '|');
        let (store_dir, reference, marker) =
            (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let store = Store::open(store_dir).unwrap();
        let r = Reference::parse(reference).unwrap();
        let mut c = ClientConfig {
            auth: gocker_storage::AuthConfig { files: vec![] },
            max_parallel_downloads: 1,
            ..ClientConfig::default()
        };
        c.insecure_registries.push(r.registry().to_string());
        let hang = |p: &LayerProgress| {
            if p.downloaded >= 300 * 1024 && !p.done {
                // Written whole under another name and renamed: the parent acts once the marker
                // exists, and must not read it half-written.
                let tmp = format!("{marker}.tmp");
                fs::write(&tmp, p.blob.to_string()).unwrap();
                fs::rename(&tmp, marker).unwrap();
                std::thread::sleep(Duration::from_secs(120)); // killed here
            }
            Ok(())
        };
        let _ = RegistryClient::new(c).pull(&store, &r, Some(&hang));
        panic!("the child should have been killed mid-pull");
    }
    if !tools_or_skip() {
        return;
    }
    let img = build_image();
    let reg = Registry::start(false);
    reg.push(img.layout.path(), "v1", "test/img:v1", false);
    let sd = tempfile::tempdir().unwrap();
    let r = Reference::parse(&format!("{}/test/img:v1", reg.host())).unwrap();
    let marker = sd.path().join("marker");
    let store_dir = sd.path().join("store");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_during_a_pull_lists_nothing_and_the_next_pull_resumes",
            "--test-threads=1",
        ])
        .env(
            CHILD,
            format!("{}|{r}|{}", store_dir.display(), marker.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the pulling child exited early: {st}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the pulling child never reached the middle of a layer");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();
    let blob = fs::read_to_string(&marker).unwrap();
    let store = Store::open(&store_dir).unwrap();
    assert!(
        store.list_images().unwrap().is_empty(),
        "a killed pull lists nothing"
    );
    let partial = store_dir
        .join("tmp/partial")
        .join(blob.trim_start_matches("sha256:"));
    let kept = fs::metadata(&partial).unwrap().len();
    assert!(kept >= 300 * 1024, "partial kept: {kept}");
    let p = client(&reg, |_| {}).pull(&store, &r, None).unwrap();
    assert_eq!(
        p.bytes_resumed, kept,
        "the next pull reused the partial download"
    );
    assert_eq!(store.list_images().unwrap().len(), 1);
    verify_unpacked(&store, &r, &UnpackOptions::for_current_user());
}
