//! gocker-storage: images for Gocker.
//!
//! - [`Store`]: a content-addressed blob store (sha256 verified on write, atomic renames, flock),
//!   refs, image listing, garbage collection, unpacked layers;
//! - [`unpack_layer`]: safe layer unpacking (gzip, zstd, plain tar) with overlayfs whiteouts;
//! - [`RegistryClient`]: an OCI distribution client (token and basic auth, TLS options,
//!   parallel resumable downloads);
//! - [`archive`]: OCI image layout and docker-archive import/export.
//!
//! Depends on no other gocker crate. See docs/storage.md.

pub mod archive;
mod digest;
mod error;
pub mod pack;
mod reference;
pub mod registry;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;
mod unpack;
pub mod volume;

pub use digest::Digest;
pub use error::{Result, StorageError};
pub use pack::{pack_layer, store_layer, PackError, PackOptions, PackReport, Packer, StoredLayer};
pub use reference::{Reference, DEFAULT_REGISTRY, DEFAULT_TAG};
pub use registry::{
    AuthConfig, ClientConfig, Credentials, LayerProgress, ProgressFn, PulledImage, RegistryClient,
};
pub use store::{
    media_types, BlobWriter, GcReport, Image, ImageRecord, ImageSummary, Store, StoreLock,
};
pub use unpack::{unpack_layer, Compression, LayerContext, UnpackOptions, UnpackReport};
