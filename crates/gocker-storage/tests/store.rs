//! The blob store, refs, locks, garbage collection, and import/export.

mod common;

use common::*;
use gocker_storage::{archive, Digest, ImageRecord, Reference, StorageError, Store, UnpackOptions};
use std::fs;
use std::sync::mpsc;
use std::time::Duration;

fn entries(p: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let claimed = Digest::of(b"what the manifest promised");
    let e = s
        .put_blob("example.com/app:1", Some(&claimed), &b"something else"[..])
        .unwrap_err();
    let actual = Digest::of(b"something else");
    match &e {
        StorageError::DigestMismatch {
            image,
            expected,
            actual: a,
            ..
        } => {
            assert_eq!(image, "example.com/app:1");
            assert_eq!(expected, &claimed.to_string());
            assert_eq!(a, &actual.to_string());
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains(&claimed.to_string()) && msg.contains(&actual.to_string()),
        "{msg}"
    );
    assert!(entries(&d.path().join("blobs/sha256")).is_empty());
    assert_eq!(entries(&d.path().join("tmp")), vec!["partial"]);
    // The right digest is accepted, stored under its name, and read back verified.
    let (dg, n) = s
        .put_blob("x", Some(&actual), &b"something else"[..])
        .unwrap();
    assert_eq!((dg.clone(), n), (actual.clone(), 14));
    assert_eq!(s.read_blob("x", &dg).unwrap(), b"something else");
    // A blob corrupted on disk is caught when read.
    fs::write(s.blob_path(&dg), b"something ELSE").unwrap();
    assert!(matches!(
        s.read_blob("x", &dg),
        Err(StorageError::DigestMismatch { .. })
    ));
}

#[test]
fn refs_list_remove_and_gc_of_blobs_and_layer_dirs() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let shared = RawTar::new()
        .file("etc/os-release", b"ID=test\n", 0o644)
        .finish();
    let a_only = RawTar::new().file("a", b"a", 0o644).finish();
    let b_only = RawTar::new().file("b", b"b", 0o644).finish();
    make_image(&s, "localhost/a:1", &[shared.clone(), a_only]);
    make_image(&s, "localhost/b", &[shared, b_only]);
    let list = s.list_images().unwrap();
    let names: Vec<_> = list.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(names, vec!["localhost/a:1", "localhost/b:latest"]);
    assert!(list.iter().all(|i| i.size > 0));
    let ra = Reference::parse("localhost/a:1").unwrap();
    let rb = Reference::parse("localhost/b:latest").unwrap();
    let da = s.unpack_image(&ra, &UnpackOptions::default()).unwrap();
    let db = s.unpack_image(&rb, &UnpackOptions::default()).unwrap();
    assert_eq!(da[0], db[0], "a shared layer is unpacked once");
    assert!(da[1].join("a").is_file() && db[1].join("b").is_file());
    // Stale temporaries (a killed process) go; partial downloads stay for a resume.
    fs::write(d.path().join("tmp/blob-stale"), b"x").unwrap();
    fs::create_dir(d.path().join("tmp/unpack-stale")).unwrap();
    fs::write(d.path().join("tmp/partial/abc"), b"x").unwrap();
    let r = s.gc().unwrap();
    assert!(
        r.blobs_removed.is_empty() && r.layer_dirs_removed.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.temp_entries_removed, 2);
    assert!(d.path().join("tmp/partial/abc").exists());

    let removed = s.remove_ref(&ra).unwrap();
    assert!(matches!(
        s.remove_ref(&ra),
        Err(StorageError::ImageNotFound { .. })
    ));
    let r = s.gc().unwrap();
    // a's manifest, config and its own layer; the shared layer stays for b.
    assert_eq!(r.blobs_removed.len(), 3, "{r:?}");
    assert!(r.blobs_removed.contains(&removed.manifest));
    assert_eq!(r.layer_dirs_removed.len(), 1);
    assert!(db[0].is_dir() && db[1].is_dir() && !da[1].exists());
    assert_eq!(s.list_images().unwrap().len(), 1);
    assert!(matches!(
        s.image(&ra),
        Err(StorageError::ImageNotFound { .. })
    ));
    s.remove_ref(&rb).unwrap();
    s.gc().unwrap();
    assert!(entries(&d.path().join("blobs/sha256")).is_empty());
    assert!(entries(&d.path().join("layers/sha256")).is_empty());
}

#[test]
fn a_ref_to_an_incomplete_image_is_refused_naming_image_and_blob() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let missing = Digest::of(b"a layer that was never stored");
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
    let cd = s.put_blob_bytes("x", None, cfg).unwrap();
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": missing.to_string(), "size": 10}],
    }))
    .unwrap();
    let md = s.put_blob_bytes("x", None, &m).unwrap();
    let r = Reference::parse("localhost/broken:1").unwrap();
    let e = s
        .set_ref(
            &r,
            ImageRecord {
                manifest: md,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                index: None,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("localhost/broken:1") && e.contains(&missing.to_string()),
        "{e}"
    );
    assert!(s.list_images().unwrap().is_empty());
}

#[test]
fn gc_waits_while_a_pull_holds_the_shared_lock() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let held = s.lock_shared().unwrap();
    let also = s.lock_shared().unwrap(); // two pulls at once are fine
    let (tx, rx) = mpsc::channel();
    let s2 = s.clone();
    let t = std::thread::spawn(move || {
        s2.gc().unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "gc ran while a pull held the lock"
    );
    drop(held);
    drop(also);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("gc ran after the lock was released");
    t.join().unwrap();
}

#[test]
fn concurrent_writers_of_the_same_blob_both_succeed() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    let want = Digest::of(&data);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| s.put_blob("x", Some(&want), &data[..]).unwrap());
        }
    });
    assert_eq!(
        entries(&d.path().join("blobs/sha256")),
        vec![want.hex().to_string()]
    );
    assert_eq!(entries(&d.path().join("tmp")), vec!["partial"]);
}

#[test]
fn oci_layout_save_and_load_round_trip_as_dir_and_tar() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("store")).unwrap();
    let l = RawTar::new().file("hello", b"world", 0o644).finish();
    let md = make_image(&s, "localhost/app:2", &[l]);
    let r = Reference::parse("localhost/app:2").unwrap();

    let out = d.path().join("layout");
    archive::save_oci_dir(&s, std::slice::from_ref(&r), &out).unwrap();
    assert!(out.join("oci-layout").is_file() && out.join("index.json").is_file());
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "2"
    );
    assert!(
        archive::save_oci_dir(&s, std::slice::from_ref(&r), &out).is_err(),
        "refuses a non-empty destination"
    );

    let s2 = Store::open(d.path().join("store2")).unwrap();
    let loaded = archive::load_oci_dir(&s2, &out, "localhost/unused").unwrap();
    assert_eq!(loaded, vec![r.clone()]);
    assert_eq!(s2.resolve(&r).unwrap().manifest, md);
    let dirs = s2.unpack_image(&r, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(dirs[0].join("hello")).unwrap(), b"world");

    let tar_path = d.path().join("app.tar");
    archive::save_oci_tar(
        &s,
        std::slice::from_ref(&r),
        fs::File::create(&tar_path).unwrap(),
        &tar_path,
    )
    .unwrap();
    let s3 = Store::open(d.path().join("store3")).unwrap();
    assert_eq!(
        archive::load_oci_tar(&s3, &tar_path, "localhost/unused").unwrap(),
        vec![r.clone()]
    );
    assert_eq!(s3.resolve(&r).unwrap().manifest, md);
    assert_eq!(entries(&d.path().join("store3/tmp")), vec!["partial"]);

    // A layout with a corrupted blob is refused and nothing is listed.
    let blob_dir = out.join("blobs/sha256");
    let layer = s.image(&r).unwrap().layer_digests().unwrap()[0].clone();
    fs::write(blob_dir.join(layer.hex()), b"tampered").unwrap();
    let s4 = Store::open(d.path().join("store4")).unwrap();
    let e = archive::load_oci_dir(&s4, &out, "localhost/unused")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&layer.to_string()) && e.contains("localhost/app:2"),
        "{e}"
    );
    assert!(s4.list_images().unwrap().is_empty());
}

fn docker_archive(layer: &[u8], diff_id: &str, tags: &str) -> Vec<u8> {
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let cfg_name = format!(
        "{}.json",
        sha256(cfg.as_bytes()).trim_start_matches("sha256:")
    );
    let manifest = format!(
        r#"[{{"Config":"{cfg_name}","RepoTags":[{tags}],"Layers":["abc/layer.tar","dup/layer.tar"]}}]"#
    );
    RawTar::new()
        .dir("abc/", 0o755)
        .file("abc/layer.tar", layer, 0o644)
        .dir("dup/", 0o755)
        .symlink("dup/layer.tar", "../abc/layer.tar")
        .file(&cfg_name, cfg.as_bytes(), 0o644)
        .file("manifest.json", manifest.as_bytes(), 0o644)
        .file("repositories", b"{}", 0o644)
        .finish()
}

#[test]
fn docker_archive_load_builds_an_oci_image_and_checks_diff_ids() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("store")).unwrap();
    let layer = RawTar::new().file("from-docker", b"yes", 0o644).finish();
    let diff = sha256(&layer);
    // The config lists the layer twice (docker links duplicates); give it two diff_ids.
    let cfg_two = format!("{diff}\",\"{diff}");
    let p = d.path().join("docker.tar");
    fs::write(
        &p,
        docker_archive(&layer, &cfg_two, r#""example.com/dock:7""#),
    )
    .unwrap();
    let refs = archive::load_docker_archive(&s, &p).unwrap();
    assert_eq!(refs, vec![Reference::parse("example.com/dock:7").unwrap()]);
    let dirs = s.unpack_image(&refs[0], &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(dirs[0].join("from-docker")).unwrap(), b"yes");
    assert_eq!(s.list_images().unwrap().len(), 1);

    let bad = format!(
        "{}\",\"{}",
        sha256(b"not the layer"),
        sha256(b"not the layer")
    );
    fs::write(&p, docker_archive(&layer, &bad, r#""example.com/bad:1""#)).unwrap();
    let s2 = Store::open(d.path().join("store2")).unwrap();
    let e = archive::load_docker_archive(&s2, &p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("digest mismatch") && e.contains(&sha256(b"not the layer")),
        "{e}"
    );
    assert!(s2.list_images().unwrap().is_empty());
}
