//! Path arguments of tools: relative to the workspace, checked before anything touches a file.
//!
//! A path argument is refused when it holds a NUL byte (`invalid_argument`), is absolute or climbs
//! with `..` (`policy_denied`), or lies outside the session's `allowed_paths` (`policy_denied`).
//! Symlinks are the business of [`crate::confined`], which resolves beneath the workspace.

use crate::error::{Result, WorkspaceError};

/// A normalized path relative to the workspace root: no leading `/`, no `.` or `..` components,
/// no empty components. The workspace root itself is `"."`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelPath(String);

impl RelPath {
    pub fn root() -> Self {
        RelPath(".".into())
    }

    /// Checks and normalizes the path argument `field` = `p`.
    pub fn parse(field: &str, p: &str) -> Result<Self> {
        if p.contains('\0') {
            return Err(WorkspaceError::InvalidArgument(format!(
                "{field}: the path contains a NUL byte"
            )));
        }
        if p.starts_with('/') {
            return Err(WorkspaceError::PolicyDenied(format!(
                "{field}: {p:?} is an absolute path; paths are relative to the workspace"
            )));
        }
        let mut parts = Vec::new();
        for c in p.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    return Err(WorkspaceError::PolicyDenied(format!(
                        "{field}: {p:?} climbs out with '..'"
                    )))
                }
                c => parts.push(c),
            }
        }
        if parts.is_empty() {
            return Ok(Self::root());
        }
        Ok(RelPath(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "."
    }

    /// Whether this path is `prefix` or below it.
    pub fn is_within(&self, prefix: &RelPath) -> bool {
        prefix.is_root()
            || self.0 == prefix.0
            || (self.0.starts_with(&prefix.0)
                && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }

    /// The parent directory and the last component (`None` for the root).
    pub fn split_last(&self) -> Option<(RelPath, &str)> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rsplit_once('/') {
            Some((d, n)) => (RelPath(d.to_string()), n),
            None => (Self::root(), self.0.as_str()),
        })
    }

    pub fn join(&self, name: &str) -> RelPath {
        if self.is_root() {
            RelPath(name.to_string())
        } else {
            RelPath(format!("{}/{name}", self.0))
        }
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session's `allowed_paths`, checked once at session creation.
#[derive(Debug, Clone)]
pub struct AllowedPaths(Vec<RelPath>);

impl AllowedPaths {
    /// From the request's list; empty means the whole workspace.
    pub fn parse(list: &[String]) -> Result<Self> {
        let mut v = Vec::new();
        for (i, p) in list.iter().enumerate() {
            v.push(RelPath::parse(&format!("allowed_paths[{i}]"), p)?);
        }
        if v.is_empty() {
            v.push(RelPath::root());
        }
        Ok(AllowedPaths(v))
    }

    /// Checks the path argument `field` = `p` and that it lies within an allowed path.
    pub fn check(&self, field: &str, p: &str) -> Result<RelPath> {
        let rel = RelPath::parse(field, p)?;
        if self.0.iter().any(|a| rel.is_within(a)) {
            Ok(rel)
        } else {
            Err(WorkspaceError::PolicyDenied(format!(
                "{field}: {p:?} is outside the session's allowed_paths ({})",
                self.0
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    pub fn as_strings(&self) -> Vec<String> {
        self.0.iter().map(|p| p.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(RelPath::parse("p", "a//b/./c").unwrap().as_str(), "a/b/c");
        assert!(RelPath::parse("p", "").unwrap().is_root());
        assert!(RelPath::parse("p", "./").unwrap().is_root());
        for bad in ["../x", "a/../../x", "a/..", ".."] {
            let e = RelPath::parse("p", bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::PolicyDenied, "{bad}");
        }
        assert_eq!(
            RelPath::parse("p", "/etc/passwd").unwrap_err().code(),
            ErrorCode::PolicyDenied
        );
        let e = RelPath::parse("path", "a\0b").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("path"));
    }

    #[test]
    fn allowed_paths_are_prefixes_on_component_boundaries() {
        let a = AllowedPaths::parse(&["src".into(), "docs/x".into()]).unwrap();
        assert!(a.check("p", "src").is_ok());
        assert!(a.check("p", "src/main.rs").is_ok());
        assert!(a.check("p", "docs/x/y").is_ok());
        assert_eq!(
            a.check("p", "srcx").unwrap_err().code(),
            ErrorCode::PolicyDenied
        );
        assert_eq!(
            a.check("p", "docs").unwrap_err().code(),
            ErrorCode::PolicyDenied
        );
        assert_eq!(
            a.check("p", ".").unwrap_err().code(),
            ErrorCode::PolicyDenied
        );
        assert_eq!(
            a.check("p", "src/../secret").unwrap_err().code(),
            ErrorCode::PolicyDenied
        );
        let all = AllowedPaths::parse(&[]).unwrap();
        assert!(all.check("p", "anything/at/all").is_ok());
        assert!(AllowedPaths::parse(&["../up".into()]).is_err());
    }
}
