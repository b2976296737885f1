//! Import and export: OCI image layout (directory or tar) and docker-archive (`docker save`) tars.

use crate::digest::Digest;
use crate::error::{IoContext, Result, StorageError};
use crate::reference::Reference;
use crate::store::{media_types as mt, parse_json, ImageRecord, Store};
use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageConfiguration, ImageIndex, ImageIndexBuilder,
    ImageManifest, ImageManifestBuilder, MediaType, SCHEMA_VERSION,
};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Annotation with the tag (OCI) in an index.json entry.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation with the full image name (containerd, podman).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

fn arch_err(path: &Path, detail: impl Into<String>) -> StorageError {
    StorageError::Archive {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

struct Export {
    files: Vec<(String, Digest)>,
    index: ImageIndex,
}

fn plan_export(store: &Store, refs: &[Reference], dest: &Path) -> Result<Export> {
    let mut blobs: Vec<(String, Digest)> = Vec::new();
    let mut descs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in refs {
        let img = store.image(r)?;
        let image = r.to_string();
        let mut all = vec![img.record.manifest.clone(), img.config_digest()?];
        all.extend(img.layer_digests()?);
        for d in all {
            if !store.has_blob(&d) {
                return Err(StorageError::BlobMissing {
                    image: image.clone(),
                    blob: d.to_string(),
                    detail: "not in the store".into(),
                });
            }
            if seen.insert(d.clone()) {
                blobs.push((format!("blobs/sha256/{}", d.hex()), d));
            }
        }
        let size = fs::metadata(store.blob_path(&img.record.manifest))
            .ctx("stat", store.blob_path(&img.record.manifest))?
            .len();
        let mut ann = HashMap::new();
        ann.insert(ANNOTATION_IMAGE_NAME.to_string(), image.clone());
        if let Some(t) = r.tag() {
            ann.insert(ANNOTATION_REF_NAME.to_string(), t.to_string());
        }
        let d = DescriptorBuilder::default()
            .media_type(MediaType::from(img.record.media_type.as_str()))
            .digest(img.record.manifest.to_oci())
            .size(size)
            .annotations(ann)
            .build()
            .map_err(|e| arch_err(dest, e.to_string()))?;
        descs.push(d);
    }
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(descs)
        .build()
        .map_err(|e| arch_err(dest, e.to_string()))?;
    Ok(Export {
        files: blobs,
        index,
    })
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Write images to an OCI image layout directory (created; must not exist or be empty).
pub fn save_oci_dir(store: &Store, refs: &[Reference], dest: &Path) -> Result<()> {
    if dest.exists()
        && fs::read_dir(dest)
            .ctx("read directory", dest)?
            .next()
            .is_some()
    {
        return Err(arch_err(dest, "destination exists and is not empty"));
    }
    let plan = plan_export(store, refs, dest)?;
    let b = dest.join("blobs/sha256");
    fs::create_dir_all(&b).ctx("create directory", &b)?;
    for (rel, d) in &plan.files {
        let dst = dest.join(rel);
        fs::copy(store.blob_path(d), &dst).ctx("copy blob", &dst)?;
    }
    fs::write(dest.join("oci-layout"), OCI_LAYOUT).ctx("write", dest.join("oci-layout"))?;
    let idx = plan
        .index
        .to_string_pretty()
        .map_err(|e| arch_err(dest, e.to_string()))?;
    fs::write(dest.join("index.json"), idx).ctx("write", dest.join("index.json"))
}

/// Write images as an OCI layout tar (`docker save`'s and `podman save --format oci-archive`'s shape).
pub fn save_oci_tar(
    store: &Store,
    refs: &[Reference],
    out: impl Write,
    name_for_errors: &Path,
) -> Result<()> {
    let plan = plan_export(store, refs, name_for_errors)?;
    let mut tb = tar::Builder::new(out);
    let e = |err: io::Error| arch_err(name_for_errors, err.to_string());
    let add = |tb: &mut tar::Builder<_>, path: &str, size: u64, r: &mut dyn Read| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        tb.append_data(&mut h, path, r).map_err(e)
    };
    add(
        &mut tb,
        "oci-layout",
        OCI_LAYOUT.len() as u64,
        &mut &OCI_LAYOUT[..],
    )?;
    for (rel, d) in &plan.files {
        let mut f = store.open_blob(d)?;
        let size = f.metadata().ctx("stat", store.blob_path(d))?.len();
        add(&mut tb, rel, size, &mut f)?;
    }
    let idx = plan
        .index
        .to_string_pretty()
        .map_err(|er| arch_err(name_for_errors, er.to_string()))?;
    add(&mut tb, "index.json", idx.len() as u64, &mut idx.as_bytes())?;
    tb.into_inner().map_err(e)?.flush().map_err(e)
}

/// Load every image of an OCI layout directory. Entries named by `io.containerd.image.name`
/// keep that name; entries with only a tag become `default_name:TAG`; untagged ones
/// `default_name@DIGEST`. Returns the references written.
pub fn load_oci_dir(store: &Store, dir: &Path, default_name: &str) -> Result<Vec<Reference>> {
    let _l = store.lock_shared()?;
    let idx_path = dir.join("index.json");
    let idx_bytes = fs::read(&idx_path).ctx("read", &idx_path)?;
    let idx: ImageIndex = parse_json("image index", &idx_path.display().to_string(), &idx_bytes)?;
    let base = Reference::parse(default_name)?;
    let mut out = Vec::new();
    for d in idx.manifests() {
        let md = Digest::from_oci(d.digest())?;
        let ann = d.annotations().clone().unwrap_or_default();
        let reference = match (ann.get(ANNOTATION_IMAGE_NAME), ann.get(ANNOTATION_REF_NAME)) {
            (Some(n), _) => Reference::parse(n)?,
            (None, Some(t))
                if Reference::parse(t).is_ok() && (t.contains('/') || t.contains('@')) =>
            {
                Reference::parse(t)?
            }
            (None, Some(t)) => base.with_tag(t)?,
            (None, None) => base.with_digest(md.clone()),
        };
        let image = reference.to_string();
        let read_layout_blob = |d: &Digest| -> Result<PathBuf> {
            let p = dir.join("blobs/sha256").join(d.hex());
            if p.is_file() {
                Ok(p)
            } else {
                Err(StorageError::BlobMissing {
                    image: image.clone(),
                    blob: d.to_string(),
                    detail: format!("not in {}", dir.display()),
                })
            }
        };
        let import = |d: &Digest| -> Result<()> {
            if store.has_blob(d) {
                return Ok(());
            }
            let p = read_layout_blob(d)?;
            store.put_blob(&image, Some(d), File::open(&p).ctx("open", &p)?)?;
            Ok(())
        };
        let mut manifest_digest = md.clone();
        let mut media_type = d.media_type().to_string();
        let mut index = None;
        let mbytes = fs::read(read_layout_blob(&md)?).ctx("read", read_layout_blob(&md)?)?;
        let mbytes = if serde_json::from_slice::<serde_json::Value>(&mbytes)
            .map(|v| v.get("manifests").is_some())
            .unwrap_or(false)
        {
            // A nested index: take this platform's manifest.
            let nested: ImageIndex = parse_json(
                "image index",
                &format!("{md} in {}", dir.display()),
                &mbytes,
            )?;
            let (os, arch, _) = crate::registry::host_platform();
            let chosen = nested
                .manifests()
                .iter()
                .find(|m| {
                    m.platform().as_ref().is_some_and(|p| {
                        p.os().to_string() == os && p.architecture().to_string() == arch
                    })
                })
                .ok_or_else(|| StorageError::NoMatchingPlatform {
                    image: image.clone(),
                    platform: format!("{os}/{arch}"),
                    available: "see the index".into(),
                })?;
            import(&md)?;
            index = Some(md.clone());
            manifest_digest = Digest::from_oci(chosen.digest())?;
            media_type = chosen.media_type().to_string();
            fs::read(read_layout_blob(&manifest_digest)?)
                .ctx("read", read_layout_blob(&manifest_digest)?)?
        } else {
            mbytes
        };
        let m: ImageManifest = parse_json(
            "image manifest",
            &format!("{manifest_digest} in {}", dir.display()),
            &mbytes,
        )?;
        import(&Digest::from_oci(m.config().digest())?)?;
        for l in m.layers() {
            import(&Digest::from_oci(l.digest())?)?;
        }
        import(&manifest_digest)?;
        store.set_ref(
            &reference,
            ImageRecord {
                manifest: manifest_digest,
                media_type,
                index,
            },
        )?;
        out.push(reference);
    }
    Ok(out)
}

/// Load an OCI layout tar: unpacked (regular files only, confined) into the store's tmp area,
/// then loaded as a directory.
pub fn load_oci_tar(store: &Store, tar_path: &Path, default_name: &str) -> Result<Vec<Reference>> {
    let tmp = store
        .root()
        .join("tmp")
        .join(crate::store::unique_name("load"));
    fs::create_dir(&tmp).ctx("create directory", &tmp)?;
    let r = (|| {
        let f = File::open(tar_path).ctx("open", tar_path)?;
        let mut a = tar::Archive::new(io::BufReader::new(f));
        for e in a.entries().map_err(|e| arch_err(tar_path, e.to_string()))? {
            let mut e = e.map_err(|e| arch_err(tar_path, e.to_string()))?;
            if e.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let p = e
                .path()
                .map_err(|er| arch_err(tar_path, er.to_string()))?
                .into_owned();
            let s = p.to_string_lossy().trim_start_matches("./").to_string();
            let ok = s == "index.json"
                || s == "oci-layout"
                || s.strip_prefix("blobs/sha256/")
                    .is_some_and(|h| Digest::from_hex(h).is_ok());
            if !ok {
                continue;
            }
            let dst = tmp.join(&s);
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent).ctx("create directory", parent)?;
            }
            let mut out = File::create(&dst).ctx("create", &dst)?;
            io::copy(&mut e, &mut out).map_err(|er| arch_err(tar_path, format!("{s}: {er}")))?;
        }
        load_oci_dir(store, &tmp, default_name)
    })();
    let _ = fs::remove_dir_all(&tmp);
    r
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Load a docker-archive tar (`docker save`: manifest.json, config JSON, layer tars).
/// Layers are stored uncompressed as OCI tar layers; each config's diff_ids must match them.
pub fn load_docker_archive(store: &Store, tar_path: &Path) -> Result<Vec<Reference>> {
    let _l = store.lock_shared()?;
    let open = || -> Result<tar::Archive<io::BufReader<File>>> {
        Ok(tar::Archive::new(io::BufReader::new(
            File::open(tar_path).ctx("open", tar_path)?,
        )))
    };
    let norm = |p: &Path| p.to_string_lossy().trim_start_matches("./").to_string();
    // Pass 1: manifest.json.
    let mut manifest_json = None;
    let mut a = open()?;
    for e in a.entries().map_err(|e| arch_err(tar_path, e.to_string()))? {
        let mut e = e.map_err(|e| arch_err(tar_path, e.to_string()))?;
        if norm(&e.path().map_err(|er| arch_err(tar_path, er.to_string()))?) == "manifest.json" {
            let mut b = Vec::new();
            e.read_to_end(&mut b)
                .map_err(|er| arch_err(tar_path, er.to_string()))?;
            manifest_json = Some(b);
            break;
        }
    }
    let manifest_json = manifest_json
        .ok_or_else(|| arch_err(tar_path, "no manifest.json: not a docker-archive"))?;
    let entries: Vec<DockerManifestEntry> = parse_json(
        "docker-archive manifest.json",
        &tar_path.display().to_string(),
        &manifest_json,
    )?;
    let mut wanted: HashMap<String, Option<(Digest, u64)>> = HashMap::new();
    for m in &entries {
        wanted.insert(m.config.clone(), None);
        for l in &m.layers {
            wanted.insert(l.clone(), None);
        }
    }
    // Pass 2: store the files manifest.json names; docker links duplicate layers to the first copy.
    let mut links: HashMap<String, String> = HashMap::new();
    let mut a = open()?;
    let name = tar_path.display().to_string();
    for e in a.entries().map_err(|e| arch_err(tar_path, e.to_string()))? {
        let e = e.map_err(|e| arch_err(tar_path, e.to_string()))?;
        let p = norm(&e.path().map_err(|er| arch_err(tar_path, er.to_string()))?);
        if !wanted.contains_key(&p) {
            continue;
        }
        match e.header().entry_type() {
            tar::EntryType::Regular => {
                let (d, n) = store.put_blob(&name, None, e)?;
                wanted.insert(p, Some((d, n)));
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Ok(Some(t)) = e.link_name() {
                    let t = if e.header().entry_type() == tar::EntryType::Symlink {
                        Path::new(&p).parent().unwrap_or(Path::new("")).join(t)
                    } else {
                        t.into_owned()
                    };
                    links.insert(p, normalize_rel(&t));
                }
            }
            _ => {}
        }
    }
    let lookup = |p: &str| -> Option<(Digest, u64)> {
        wanted
            .get(p)
            .cloned()
            .flatten()
            .or_else(|| links.get(p).and_then(|t| wanted.get(t).cloned().flatten()))
    };
    let mut out = Vec::new();
    for m in &entries {
        let (cd, cs) = lookup(&m.config)
            .ok_or_else(|| arch_err(tar_path, format!("config {} is missing", m.config)))?;
        let cbytes = store.read_blob(&name, &cd)?;
        let config: ImageConfiguration =
            parse_json("image config", &format!("{} in {name}", m.config), &cbytes)?;
        let mut layers: Vec<Descriptor> = Vec::new();
        for (i, l) in m.layers.iter().enumerate() {
            let (ld, ls) =
                lookup(l).ok_or_else(|| arch_err(tar_path, format!("layer {l} is missing")))?;
            let diff = config
                .rootfs()
                .diff_ids()
                .get(i)
                .cloned()
                .unwrap_or_default();
            let mut head = [0u8; 4];
            let n = store
                .open_blob(&ld)?
                .read(&mut head)
                .ctx("read", store.blob_path(&ld))?;
            let media = match crate::unpack::Compression::from_magic(&head[..n]) {
                crate::unpack::Compression::Gzip => mt::OCI_LAYER_GZIP,
                crate::unpack::Compression::Zstd => mt::OCI_LAYER_ZSTD,
                crate::unpack::Compression::None => {
                    if diff != ld.to_string() {
                        return Err(StorageError::DigestMismatch {
                            image: name.clone(),
                            expected: diff,
                            actual: ld.to_string(),
                            size: ls,
                        });
                    }
                    mt::OCI_LAYER_TAR
                }
            };
            layers.push(
                DescriptorBuilder::default()
                    .media_type(MediaType::from(media))
                    .digest(ld.to_oci())
                    .size(ls)
                    .build()
                    .map_err(|e| arch_err(tar_path, e.to_string()))?,
            );
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(
                DescriptorBuilder::default()
                    .media_type(MediaType::ImageConfig)
                    .digest(cd.to_oci())
                    .size(cs)
                    .build()
                    .map_err(|e| arch_err(tar_path, e.to_string()))?,
            )
            .layers(layers)
            .build()
            .map_err(|e| arch_err(tar_path, e.to_string()))?;
        let mbytes = manifest
            .to_string()
            .map_err(|e| arch_err(tar_path, e.to_string()))?;
        let md = store.put_blob_bytes(&name, None, mbytes.as_bytes())?;
        let tags = m.repo_tags.clone().unwrap_or_default();
        let refs: Vec<Reference> = if tags.is_empty() {
            vec![Reference::parse("localhost/docker-archive")?.with_digest(md.clone())]
        } else {
            tags.iter()
                .map(|t| Reference::parse(t))
                .collect::<Result<_>>()?
        };
        for r in refs {
            store.set_ref(
                &r,
                ImageRecord {
                    manifest: md.clone(),
                    media_type: mt::OCI_MANIFEST.into(),
                    index: None,
                },
            )?;
            out.push(r);
        }
    }
    Ok(out)
}

/// Lexically normalize a relative path inside the archive (`a/../b` → `b`), never above the top.
fn normalize_rel(p: &Path) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.join("/")
}
