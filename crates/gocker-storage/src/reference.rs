//! Docker-style image references: `alpine` → `docker.io/library/alpine:latest`,
//! `host:port/repo:tag`, `repo@sha256:…`, `repo:tag@sha256:…`.

use crate::digest::Digest;
use crate::error::{Result, StorageError};
use std::fmt;
use std::str::FromStr;

/// The registry that short names resolve to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// A fully qualified image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalize a reference the way docker does.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| StorageError::InvalidReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        if input.len() > 255 + 64 + 8 {
            return Err(bad("reference too long"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("whitespace or control characters are not allowed"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let d = Digest::parse(d).map_err(|e| bad(&format!("bad digest: {e}")))?;
                (r, Some(d))
            }
            None => (input, None),
        };
        // A tag is the part after the last ':' if that ':' comes after the last '/'.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(c) if last_slash.is_none_or(|s| c > s) => (&rest[..c], Some(&rest[c + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| bad(&r))?;
        }
        if name.is_empty() {
            return Err(bad("empty repository name"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                validate_registry(first).map_err(|r| bad(&r))?;
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|r| bad(&r))?;
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Registry host (and port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// Repository path, e.g. `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.repository
    }
    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_selector(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }
    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        validate_tag(tag).map_err(|reason| StorageError::InvalidReference {
            reference: format!("{}/{}:{tag}", self.registry, self.repository),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }
    /// The same repository pinned to a digest, without tag.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }
}

fn validate_tag(t: &str) -> std::result::Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad tag {t:?}: 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
        ))
    }
}

fn validate_registry(r: &str) -> std::result::Result<(), String> {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (r, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Err(format!("bad registry port {p:?}"));
        }
    }
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let ipv6_ok = host.starts_with('[') && host.ends_with(']');
    if host_ok || ipv6_ok {
        Ok(())
    } else {
        Err(format!("bad registry host {host:?}"))
    }
}

fn validate_repository(repo: &str) -> std::result::Result<(), String> {
    if repo.len() > 255 {
        return Err("repository name longer than 255 characters".into());
    }
    for comp in repo.split('/') {
        if comp.is_empty() {
            return Err("empty path component in repository name".into());
        }
        if comp.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("repository name must be lowercase: {comp:?}"));
        }
        // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
        let b = comp.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return Err(format!(
                "repository component {comp:?} must start and end with [a-z0-9]"
            ));
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &comp[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err(format!(
                    "bad separator {sep:?} in repository component {comp:?}"
                ));
            }
        }
    }
    Ok(())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn short_names_are_docker_hub_library() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/alpine");
        assert_eq!(
            Reference::parse("user/app:1.0").unwrap().to_string(),
            "docker.io/user/app:1.0"
        );
        assert_eq!(
            Reference::parse("index.docker.io/library/alpine:3")
                .unwrap()
                .to_string(),
            "docker.io/library/alpine:3"
        );
    }

    #[test]
    fn host_port_tag_and_digest() {
        let r = Reference::parse("127.0.0.1:5000/test/img:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "test/img");
        assert_eq!(r.tag(), Some("v1"));
        let r = Reference::parse("localhost/img").unwrap();
        assert_eq!(r.to_string(), "localhost/img:latest");
        let r = Reference::parse(&format!("quay.io/a/b@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.manifest_selector(), D);
        let r = Reference::parse(&format!("alpine:3.20@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/alpine:3.20@{D}"));
        // A port-like suffix without a slash after it is a tag.
        let r = Reference::parse("myhost:5000").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/myhost:5000");
    }

    #[test]
    fn bad_references_are_refused_with_reason() {
        for (input, needle) in [
            ("", "empty"),
            ("Alpine", "lowercase"),
            ("alpine:", "bad tag"),
            ("alpine:-x", "bad tag"),
            ("alpine@sha256:123", "bad digest"),
            ("alpine@md5:d41d8cd98f00b204e9800998ecf8427e", "bad digest"),
            ("a//b", "empty path component"),
            ("a..b", "bad separator"),
            ("host:99999/x", "bad registry port"),
            ("al pine", "whitespace"),
            ("-alpine", "must start"),
        ] {
            let e = Reference::parse(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input:?}: {e}");
            assert!(e.contains(&format!("{input:?}")), "{e}");
        }
    }
}
