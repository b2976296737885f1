//! gocker's own names, shared by the image, rootfs and run modules: the provisioned default
//! image, the annotation a container run on an image carries, and what a container name may be.
//! A leaf.

/// The provisioned default image: `gocker rootfs build` registers its rootfs as
/// `gocker-alpine:<version>` and `gocker-alpine:latest` (docs/images.md, "The default image").
pub(crate) const DEFAULT_IMAGE: &str = "gocker-alpine";
/// The tag a bare `gocker run COMMAND` runs on.
pub(crate) const DEFAULT_REF: &str = "gocker-alpine:latest";

/// The annotation of a container run on an image: the image id (`sha256:<config>`), which
/// `rmi` and `image prune -a` read back from the saved spec.
pub(crate) const IMAGE_ANNOTATION: &str = "io.gocker.image.id";

/// A container name as `--name` takes it (docker's rule): letters, digits, `_`, `.`, `-`,
/// starting with a letter or digit, at most 128 characters. Also what `container:NAME` accepts.
pub(crate) fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        && n.len() <= 128
}
