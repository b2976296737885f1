//! The content-addressed store: blobs, refs, unpacked layers, locks, garbage collection.
//!
//! Layout under the root directory:
//! ```text
//! blobs/sha256/<hex>          every blob (manifests, index, configs, compressed layers), verified on write
//! layers/sha256/<diff-hex>    one unpacked layer per diff_id (an overlayfs lower)
//! refs.json                   reference → manifest digest, written atomically (temp + rename)
//! tmp/                        blob writes and unpacks in progress (renamed into place when complete)
//! tmp/partial/<hex>           interrupted downloads, continued with a Range request
//! gc.lock                     flock: shared while pulling/importing/unpacking, exclusive while collecting
//! refs.lock                   flock: exclusive while refs.json is read-modified-written
//! ```

use crate::digest::Digest;
use crate::error::{IoContext, Result, StorageError};
use crate::reference::Reference;
use crate::unpack::{self, UnpackOptions, UnpackReport};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use rustix::fs::FlockOperation;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest manifest, index or config we read into memory.
pub(crate) const MAX_JSON_BLOB: u64 = 8 << 20;

/// Media types of manifests and indexes we know.
pub mod media_types {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// What a ref points at.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    /// Digest of the (platform) image manifest.
    pub manifest: Digest,
    /// Its media type (OCI or docker schema 2).
    pub media_type: String,
    /// The image index (manifest list) the manifest was chosen from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct RefsFile {
    version: u32,
    refs: BTreeMap<String, ImageRecord>,
}

/// One line of `gocker images`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    pub reference: String,
    pub manifest: Digest,
    /// The config digest: docker's "IMAGE ID".
    pub config: Digest,
    /// Sum of config and (compressed) layer sizes.
    pub size: u64,
}

/// An image resolved from the store, with its parsed manifest and config.
#[derive(Clone, Debug)]
pub struct Image {
    pub reference: Reference,
    pub record: ImageRecord,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
}

impl Image {
    /// Layer blob digests, lowest first.
    pub fn layer_digests(&self) -> Result<Vec<Digest>> {
        self.manifest
            .layers()
            .iter()
            .map(|l| Digest::from_oci(l.digest()))
            .collect()
    }
    /// Config digest (docker's image id).
    pub fn config_digest(&self) -> Result<Digest> {
        Digest::from_oci(self.manifest.config().digest())
    }
}

/// What `Store::gc` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: Vec<Digest>,
    pub layer_dirs_removed: Vec<Digest>,
    pub bytes_freed: u64,
    pub temp_entries_removed: usize,
}

/// Held while the lock is taken; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// The content-addressed image store.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn unique_name(prefix: &str) -> String {
    let mut r = [0u8; 8];
    // Fall back to pid + counter alone when getrandom fails; names only need to be unique here.
    let _ = rustix::rand::getrandom(&mut r, rustix::rand::GetRandomFlags::empty());
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        crate::digest::to_hex(&r)
    )
}

impl Store {
    /// Open (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for d in ["blobs/sha256", "layers/sha256", "tmp/partial"] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx("create directory", &p)?;
        }
        Ok(Store { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether the blob is in the store.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Directory of the unpacked layer with this diff_id (whether or not it exists).
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn partial_path(&self, d: &Digest) -> PathBuf {
        self.root.join("tmp/partial").join(d.hex())
    }

    fn lock(&self, name: &str, op: FlockOperation) -> Result<StoreLock> {
        let p = self.root.join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .ctx("open lock file", &p)?;
        rustix::fs::flock(&f, op).ctx("flock", &p)?;
        Ok(StoreLock { _file: f })
    }

    /// Shared lock: taken while pulling, importing or unpacking, so that `gc` waits.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.lock("gc.lock", FlockOperation::LockShared)
    }

    /// Exclusive lock: taken by `gc`.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock("gc.lock", FlockOperation::LockExclusive)
    }

    /// Start writing a blob. `expected` is checked on `commit`; `image` names the image in errors.
    pub fn blob_writer(
        &self,
        image: &str,
        expected: Option<Digest>,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter> {
        let path = self.tmp_dir().join(unique_name("blob"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx("create temporary blob", &path)?;
        Ok(BlobWriter {
            store: self.clone(),
            image: image.to_string(),
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            expected,
            expected_size,
        })
    }

    /// Store bytes read from `r`, verified against `expected` when given. Returns digest and size.
    pub fn put_blob(
        &self,
        image: &str,
        expected: Option<&Digest>,
        mut r: impl Read,
    ) -> Result<(Digest, u64)> {
        let mut w = self.blob_writer(image, expected.cloned(), None)?;
        let tmp = w.path.clone();
        io::copy(&mut r, &mut w).ctx("write blob", tmp)?;
        w.commit()
    }

    /// Store a small in-memory blob.
    pub fn put_blob_bytes(
        &self,
        image: &str,
        expected: Option<&Digest>,
        data: &[u8],
    ) -> Result<Digest> {
        Ok(self.put_blob(image, expected, data)?.0)
    }

    /// Move a fully downloaded file (in the store's tmp area) into place after verifying it.
    pub(crate) fn adopt_file(
        &self,
        image: &str,
        path: &Path,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<()> {
        let (actual, n) = hash_file(path)?;
        if let Some(s) = size {
            if s != n {
                let _ = fs::remove_file(path);
                return Err(StorageError::SizeMismatch {
                    image: image.into(),
                    blob: expected.to_string(),
                    expected: s,
                    actual: n,
                });
            }
        }
        if &actual != expected {
            let _ = fs::remove_file(path);
            return Err(StorageError::DigestMismatch {
                image: image.into(),
                expected: expected.to_string(),
                actual: actual.to_string(),
                size: n,
            });
        }
        let dst = self.blob_path(expected);
        fs::rename(path, &dst).ctx("rename blob into place", &dst)
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.blob_path(d);
        File::open(&p).ctx("open blob", p)
    }

    /// Read a small (JSON) blob, checking its digest again.
    pub fn read_blob(&self, image: &str, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::BlobMissing {
                    image: image.into(),
                    blob: d.to_string(),
                    detail: "not in the store".into(),
                })
            }
            Err(e) => return Err(StorageError::io("open blob", p, e)),
        };
        let mut buf = Vec::new();
        f.take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut buf)
            .ctx("read blob", &p)?;
        if buf.len() as u64 > MAX_JSON_BLOB {
            return Err(StorageError::Json {
                what: "blob",
                location: format!("{d} of image {image}"),
                detail: format!("larger than {MAX_JSON_BLOB} bytes"),
            });
        }
        let actual = Digest::of(&buf);
        if &actual != d {
            return Err(StorageError::DigestMismatch {
                image: image.into(),
                expected: d.to_string(),
                actual: actual.to_string(),
                size: buf.len() as u64,
            });
        }
        Ok(buf)
    }

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    fn read_refs(&self) -> Result<RefsFile> {
        let p = self.refs_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StorageError::Json {
                what: "refs index",
                location: p.display().to_string(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RefsFile {
                version: 1,
                refs: BTreeMap::new(),
            }),
            Err(e) => Err(StorageError::io("read", p, e)),
        }
    }

    fn write_refs(&self, refs: &RefsFile) -> Result<()> {
        let p = self.refs_path();
        let tmp = self.tmp_dir().join(unique_name("refs"));
        let data = serde_json::to_vec_pretty(refs).map_err(|e| StorageError::Json {
            what: "refs index",
            location: p.display().to_string(),
            detail: e.to_string(),
        })?;
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(&data).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        fs::rename(&tmp, &p).ctx("rename refs index into place", &p)
    }

    fn update_refs<T>(&self, f: impl FnOnce(&mut RefsFile) -> Result<T>) -> Result<T> {
        let _l = self.lock("refs.lock", FlockOperation::LockExclusive)?;
        let mut refs = self.read_refs()?;
        let out = f(&mut refs)?;
        refs.version = 1;
        self.write_refs(&refs)?;
        Ok(out)
    }

    /// Record `reference` → `record`, after checking that the manifest, its config and every
    /// layer blob are in the store (an image is never listed with a blob missing).
    pub fn set_ref(&self, reference: &Reference, record: ImageRecord) -> Result<()> {
        let image = reference.to_string();
        self.check_complete(&image, &record)?;
        self.update_refs(|r| {
            r.refs.insert(image.clone(), record);
            Ok(())
        })
    }

    fn check_complete(&self, image: &str, record: &ImageRecord) -> Result<()> {
        let manifest = self.read_manifest(image, &record.manifest)?;
        let mut need = vec![Digest::from_oci(manifest.config().digest())?];
        for l in manifest.layers() {
            need.push(Digest::from_oci(l.digest())?);
        }
        if let Some(i) = &record.index {
            need.push(i.clone());
        }
        for d in need {
            if !self.has_blob(&d) {
                return Err(StorageError::BlobMissing {
                    image: image.into(),
                    blob: d.to_string(),
                    detail: "not in the store".into(),
                });
            }
        }
        Ok(())
    }

    /// The record a reference points at.
    pub fn resolve(&self, reference: &Reference) -> Result<ImageRecord> {
        let name = reference.to_string();
        self.read_refs()?
            .refs
            .get(&name)
            .cloned()
            .ok_or(StorageError::ImageNotFound { reference: name })
    }

    /// Remove a reference (the blobs stay until `gc`). Returns what it pointed at.
    pub fn remove_ref(&self, reference: &Reference) -> Result<ImageRecord> {
        let name = reference.to_string();
        self.update_refs(|r| {
            r.refs.remove(&name).ok_or(StorageError::ImageNotFound {
                reference: name.clone(),
            })
        })
    }

    /// All references, sorted.
    pub fn refs(&self) -> Result<Vec<(Reference, ImageRecord)>> {
        self.read_refs()?
            .refs
            .into_iter()
            .map(|(k, v)| Ok((Reference::parse(&k)?, v)))
            .collect()
    }

    /// List images (one per reference).
    pub fn list_images(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for (reference, record) in self.refs()? {
            let image = reference.to_string();
            let m = self.read_manifest(&image, &record.manifest)?;
            let size = m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>();
            out.push(ImageSummary {
                reference: image,
                config: Digest::from_oci(m.config().digest())?,
                manifest: record.manifest,
                size,
            });
        }
        Ok(out)
    }

    pub(crate) fn read_manifest(&self, image: &str, d: &Digest) -> Result<ImageManifest> {
        let b = self.read_blob(image, d)?;
        parse_json("image manifest", &format!("{d} of image {image}"), &b)
    }

    /// Resolve a reference to its manifest and config.
    pub fn image(&self, reference: &Reference) -> Result<Image> {
        let record = self.resolve(reference)?;
        let image = reference.to_string();
        let manifest = self.read_manifest(&image, &record.manifest)?;
        let cd = Digest::from_oci(manifest.config().digest())?;
        let cb = self.read_blob(&image, &cd)?;
        let config = parse_json("image config", &format!("{cd} of image {image}"), &cb)?;
        Ok(Image {
            reference: reference.clone(),
            record,
            manifest,
            config,
        })
    }

    /// Unpack every layer of an image (skipping those already unpacked) and return the layer
    /// directories, lowest first (reverse them for overlayfs `lowerdir=`).
    pub fn unpack_image(
        &self,
        reference: &Reference,
        opts: &UnpackOptions,
    ) -> Result<Vec<PathBuf>> {
        let _l = self.lock_shared()?;
        let img = self.image(reference)?;
        let image = reference.to_string();
        let diff_ids = img.config.rootfs().diff_ids();
        if diff_ids.len() != img.manifest.layers().len() {
            return Err(StorageError::Json {
                what: "image config",
                location: format!("{} of image {image}", img.config_digest()?),
                detail: format!(
                    "{} diff_ids for {} layers",
                    diff_ids.len(),
                    img.manifest.layers().len()
                ),
            });
        }
        let mut dirs = Vec::new();
        for (layer, diff_id) in img.manifest.layers().iter().zip(diff_ids) {
            let blob = Digest::from_oci(layer.digest())?;
            let diff_id = Digest::parse(diff_id)?;
            self.unpack_blob(&image, &blob, layer.media_type().as_ref(), &diff_id, opts)?;
            dirs.push(self.layer_dir(&diff_id));
        }
        Ok(dirs)
    }

    /// Unpack one layer blob into `layers/sha256/<diff_id>` (no-op if it exists), via a temp dir.
    pub fn unpack_blob(
        &self,
        image: &str,
        blob: &Digest,
        media_type: &str,
        diff_id: &Digest,
        opts: &UnpackOptions,
    ) -> Result<Option<UnpackReport>> {
        let dst = self.layer_dir(diff_id);
        if dst.is_dir() {
            return Ok(None);
        }
        let f = match File::open(self.blob_path(blob)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::BlobMissing {
                    image: image.into(),
                    blob: blob.to_string(),
                    detail: "layer blob not in the store".into(),
                })
            }
            Err(e) => return Err(StorageError::io("open blob", self.blob_path(blob), e)),
        };
        let tmp = self.tmp_dir().join(unique_name("unpack"));
        fs::create_dir(&tmp).ctx("create directory", &tmp)?;
        let ctx = unpack::LayerContext {
            image: image.to_string(),
            blob: blob.to_string(),
            media_type: media_type.to_string(),
            expected_diff_id: Some(diff_id.clone()),
        };
        let result = unpack::unpack_layer(io::BufReader::new(f), &tmp, &ctx, opts);
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        match fs::rename(&tmp, &dst) {
            Ok(()) => Ok(Some(report)),
            // Another process unpacked the same layer first.
            Err(_) if dst.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(None)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(StorageError::io("rename layer into place", dst, e))
            }
        }
    }

    /// Remove blobs and unpacked layers that no reference needs, and stale temporary files
    /// (partial downloads are kept so that a later pull can resume them).
    pub fn gc(&self) -> Result<GcReport> {
        let _l = self.lock_exclusive()?;
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        for (reference, record) in self.refs()? {
            let image = reference.to_string();
            keep_blobs.insert(record.manifest.clone());
            if let Some(i) = &record.index {
                keep_blobs.insert(i.clone());
            }
            let m = self.read_manifest(&image, &record.manifest)?;
            let cd = Digest::from_oci(m.config().digest())?;
            keep_blobs.insert(cd.clone());
            for l in m.layers() {
                keep_blobs.insert(Digest::from_oci(l.digest())?);
            }
            if let Ok(cb) = self.read_blob(&image, &cd) {
                if let Ok(c) = serde_json::from_slice::<ImageConfiguration>(&cb) {
                    for d in c.rootfs().diff_ids() {
                        if let Ok(d) = Digest::parse(d) {
                            keep_layers.insert(d);
                        }
                    }
                }
            }
        }
        let mut report = GcReport::default();
        let bdir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&bdir).ctx("read directory", &bdir)? {
            let e = e.ctx("read directory", &bdir)?;
            let name = e.file_name();
            let Ok(d) = Digest::from_hex(&name.to_string_lossy()) else {
                continue;
            };
            if !keep_blobs.contains(&d) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path()).ctx("remove blob", e.path())?;
                report.bytes_freed += size;
                report.blobs_removed.push(d);
            }
        }
        let ldir = self.root.join("layers/sha256");
        for e in fs::read_dir(&ldir).ctx("read directory", &ldir)? {
            let e = e.ctx("read directory", &ldir)?;
            let Ok(d) = Digest::from_hex(&e.file_name().to_string_lossy()) else {
                continue;
            };
            if !keep_layers.contains(&d) {
                fs::remove_dir_all(e.path()).ctx("remove layer directory", e.path())?;
                report.layer_dirs_removed.push(d);
            }
        }
        // With the exclusive lock held nobody is writing: everything in tmp/ but partial/ is stale.
        let tdir = self.tmp_dir();
        for e in fs::read_dir(&tdir).ctx("read directory", &tdir)? {
            let e = e.ctx("read directory", &tdir)?;
            if e.file_name() == "partial" {
                continue;
            }
            let p = e.path();
            let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.ctx("remove stale temporary", &p)?;
            report.temp_entries_removed += 1;
        }
        report.blobs_removed.sort();
        Ok(report)
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    location: &str,
    b: &[u8],
) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| StorageError::Json {
        what,
        location: location.to_string(),
        detail: e.to_string(),
    })
}

pub(crate) fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let mut f = File::open(path).ctx("open", path)?;
    let mut h = Sha256::new();
    let n = io::copy(&mut f, &mut h).ctx("read", path)?;
    Ok((Digest::from_hasher(h), n))
}

/// A blob being written: hashed as it is written, renamed into place by `commit` when the digest
/// matches, removed otherwise (and on drop).
pub struct BlobWriter {
    store: Store,
    image: String,
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    expected: Option<Digest>,
    expected_size: Option<u64>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer closed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// Verify and move into place. On a mismatch nothing is left in the store.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        let file = self.file.take().expect("commit once");
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        let fail = |e: StorageError, path: &Path| {
            let _ = fs::remove_file(path);
            Err(e)
        };
        if let Some(s) = self.expected_size {
            if s != self.size {
                return fail(
                    StorageError::SizeMismatch {
                        image: self.image.clone(),
                        blob: self.expected.as_ref().unwrap_or(&actual).to_string(),
                        expected: s,
                        actual: self.size,
                    },
                    &self.path,
                );
            }
        }
        if let Some(exp) = &self.expected {
            if exp != &actual {
                return fail(
                    StorageError::DigestMismatch {
                        image: self.image.clone(),
                        expected: exp.to_string(),
                        actual: actual.to_string(),
                        size: self.size,
                    },
                    &self.path,
                );
            }
        }
        if let Err(e) = file.sync_all() {
            return fail(StorageError::io("fsync", &self.path, e), &self.path);
        }
        drop(file);
        let dst = self.store.blob_path(&actual);
        if let Err(e) = fs::rename(&self.path, &dst) {
            return fail(
                StorageError::io("rename blob into place", dst, e),
                &self.path,
            );
        }
        Ok((actual, self.size))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}
