//! gocker's own names, shared by the image, rootfs and run modules: the provisioned default
//! image and the annotation a container run on an image carries. A leaf.

/// The provisioned default image: `gocker rootfs build` registers its rootfs as
/// `gocker-alpine:<version>` and `gocker-alpine:latest` (docs/images.md, "The default image").
pub(crate) const DEFAULT_IMAGE: &str = "gocker-alpine";
/// The tag a bare `gocker run COMMAND` runs on.
pub(crate) const DEFAULT_REF: &str = "gocker-alpine:latest";

/// The annotation of a container run on an image: the image id (`sha256:<config>`), which
/// `rmi` and `image prune -a` read back from the saved spec.
pub(crate) const IMAGE_ANNOTATION: &str = "io.gocker.image.id";
