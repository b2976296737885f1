//! Helpers shared by the integration tests: a raw tar writer that can express hostile entries.
#![allow(dead_code)]

use std::io::Write;

/// Builds tar streams entry by entry, with no path validation (so tests can write hostile ones).
pub struct RawTar {
    out: Vec<u8>,
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "LEN key=value\n" where LEN counts itself.
    let body_len = 1 + key.len() + 1 + value.len() + 1;
    let mut len = body_len + 1;
    while len != body_len + len.to_string().len() {
        len = body_len + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

impl Default for RawTar {
    fn default() -> Self {
        Self::new()
    }
}

impl RawTar {
    pub fn new() -> Self {
        RawTar { out: Vec::new() }
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        path: &[u8],
        kind: tar::EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
        uid: u64,
        dev: (u32, u32),
    ) {
        assert!(
            path.len() <= 100 && link.len() <= 100,
            "keep test paths short"
        );
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_600_000_000);
        {
            let b = h.as_mut_bytes();
            b[..100].fill(0);
            b[..path.len()].copy_from_slice(path);
            b[157..257].fill(0);
            b[157..157 + link.len()].copy_from_slice(link);
        }
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(dev.0).unwrap();
            h.set_device_minor(dev.1).unwrap();
        }
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        self.header(
            path.as_bytes(),
            tar::EntryType::Regular,
            b"",
            data,
            mode,
            0,
            (0, 0),
        );
        self
    }
    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64) -> Self {
        self.header(
            path.as_bytes(),
            tar::EntryType::Regular,
            b"",
            data,
            mode,
            uid,
            (0, 0),
        );
        self
    }
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.header(
            path.as_bytes(),
            tar::EntryType::Directory,
            b"",
            b"",
            mode,
            0,
            (0, 0),
        );
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.header(
            path.as_bytes(),
            tar::EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
            0,
            (0, 0),
        );
        self
    }
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.header(
            path.as_bytes(),
            tar::EntryType::Link,
            target.as_bytes(),
            b"",
            0o644,
            0,
            (0, 0),
        );
        self
    }
    pub fn chardev(mut self, path: &str, major: u32, minor: u32) -> Self {
        self.header(
            path.as_bytes(),
            tar::EntryType::Char,
            b"",
            b"",
            0o666,
            0,
            (major, minor),
        );
        self
    }
    /// A PAX extended header carrying xattrs for the next entry.
    pub fn pax_xattrs(mut self, xattrs: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in xattrs {
            data.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        self.header(
            b"././@PaxHeader",
            tar::EntryType::XHeader,
            b"",
            &data,
            0o644,
            0,
            (0, 0),
        );
        self
    }
    /// The tar with its two zero end blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn getxattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Put an image made of the given uncompressed layer tars (gzip-compressed) into `store` and
/// point `reference` at it. Returns the manifest digest.
pub fn make_image(
    store: &gocker_storage::Store,
    reference: &str,
    layers: &[Vec<u8>],
) -> gocker_storage::Digest {
    let r = gocker_storage::Reference::parse(reference).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let gz = gzip(l);
        let d = store.put_blob_bytes(reference, None, &gz).unwrap();
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": gz.len()}));
        diff_ids.push(sha256(l));
    }
    let cfg = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = store.put_blob_bytes(reference, None, &cfg).unwrap();
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cfg.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = store.put_blob_bytes(reference, None, &m).unwrap();
    store
        .set_ref(
            &r,
            gocker_storage::ImageRecord {
                manifest: md.clone(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                index: None,
            },
        )
        .unwrap();
    md
}
