//! Artifact contents on disk: `ARTIFACT_ROOT/<invocation id>/<artifact id>`, with their sha256.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, WorkspaceError};
use crate::ids::{is_id, new_id, now};
use crate::model::Artifact;

#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ArtifactStore {
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| WorkspaceError::io(root.display(), e))?;
        Ok(ArtifactStore {
            root: root.to_path_buf(),
        })
    }

    /// Stores `data` as artifact `name` of `invocation`.
    pub fn put(
        &self,
        invocation: &str,
        name: &str,
        content_type: &str,
        data: &[u8],
    ) -> Result<Artifact> {
        let id = new_id();
        let dir = self.root.join(invocation);
        std::fs::create_dir_all(&dir).map_err(|e| WorkspaceError::io(dir.display(), e))?;
        let rel = format!("{invocation}/{id}");
        let p = self.root.join(&rel);
        std::fs::write(&p, data).map_err(|e| WorkspaceError::io(p.display(), e))?;
        Ok(Artifact {
            id,
            name: name.to_string(),
            path: rel,
            content_type: content_type.to_string(),
            size_bytes: data.len() as u64,
            sha256: sha256_hex(data),
            created_at: now(),
        })
    }

    /// The content of an artifact recorded as `a`.
    pub fn read(&self, a: &Artifact) -> Result<Vec<u8>> {
        let (inv, id) = a
            .path
            .split_once('/')
            .filter(|(i, d)| is_id(i) && is_id(d))
            .ok_or_else(|| WorkspaceError::Internal(format!("artifact path {:?}", a.path)))?;
        let p = self.root.join(inv).join(id);
        std::fs::read(&p).map_err(|e| WorkspaceError::io(p.display(), e))
    }

    /// Removes the artifacts of `invocation`.
    pub fn remove_invocation(&self, invocation: &str) -> Result<()> {
        if !is_id(invocation) {
            return Ok(());
        }
        let d = self.root.join(invocation);
        match std::fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WorkspaceError::io(d.display(), e)),
        }
    }
}
