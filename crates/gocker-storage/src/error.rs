//! Typed errors of the storage crate. Every variant names what failed and on what.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Every error of the storage crate.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// A digest string is malformed.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },
    /// Content did not hash to the digest it was announced with. Nothing was stored.
    #[error("digest mismatch for blob {expected} of image {image}: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        image: String,
        expected: String,
        actual: String,
        size: u64,
    },
    /// Content had another size than the descriptor announced.
    #[error(
        "size mismatch for blob {blob} of image {image}: expected {expected} bytes, got {actual}"
    )]
    SizeMismatch {
        image: String,
        blob: String,
        expected: u64,
        actual: u64,
    },
    /// A blob that a manifest refers to is in neither the store nor the registry.
    #[error("blob {blob} of image {image} is missing: {detail}")]
    BlobMissing {
        image: String,
        blob: String,
        detail: String,
    },
    /// A JSON document (manifest, index, config, refs) could not be parsed or written.
    #[error("{what} {location}: {detail}")]
    Json {
        what: &'static str,
        location: String,
        detail: String,
    },
    /// No image of that name in the store.
    #[error("image {reference} is not in the store")]
    ImageNotFound { reference: String },
    /// The registry has no manifest for that tag or digest.
    #[error("image {image}: registry {registry} has no manifest {selector}: {detail}")]
    ManifestUnknown {
        image: String,
        registry: String,
        selector: String,
        detail: String,
    },
    /// An image index has no manifest for the wanted platform.
    #[error("image {image} has no manifest for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        image: String,
        platform: String,
        available: String,
    },
    /// A media type that this crate does not handle.
    #[error("unsupported media type {media_type:?} for {what} of image {image}")]
    UnsupportedMediaType {
        image: String,
        what: String,
        media_type: String,
    },
    /// Unpacking a layer failed or the layer is hostile; no partial layer directory is left.
    #[error("layer {blob} of image {image}: {entry}: {reason}")]
    Unpack {
        image: String,
        blob: String,
        /// The tar entry concerned, or `<stream>` for errors of the compressed stream.
        entry: String,
        reason: String,
    },
    /// The registry answered with an error status.
    #[error("registry {registry}: {method} {url}: HTTP {status}: {detail}")]
    Registry {
        registry: String,
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
    },
    /// The registry could not be reached (DNS, TCP, TLS).
    #[error("registry {registry}: {url}: {detail}")]
    Transport {
        registry: String,
        url: String,
        detail: String,
    },
    /// The registry asks for credentials that we do not have, or rejected them.
    #[error("registry {registry}: authentication failed for {scope}: {detail}")]
    Auth {
        registry: String,
        scope: String,
        detail: String,
    },
    /// A TLS setting (extra CA file) could not be used.
    #[error("TLS configuration for registry {registry}: {detail}")]
    Tls { registry: String, detail: String },
    /// The progress callback asked to stop; the partial download is kept for a resume.
    #[error(
        "download of blob {blob} of image {image} interrupted after {downloaded} bytes: {reason}"
    )]
    Interrupted {
        image: String,
        blob: String,
        downloaded: u64,
        reason: String,
    },
    /// A layout or archive (OCI layout, docker-archive) is malformed.
    #[error("archive {path}: {detail}")]
    Archive { path: PathBuf, detail: String },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Extension to attach an operation and a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| StorageError::io(op, path, e))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| StorageError::io(op, path, e.into()))
    }
}
