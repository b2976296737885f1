//! Which roles may call which tools (RBAC from a policy file with defaults), and the argument
//! constraints that are policy rather than schema (`extra_args` of the repo runners).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Result, WorkspaceError};
use crate::model::Principal;

/// Roles → tool patterns (`fs.read_file`, `fs.*`, `*`); a principal may call a tool when one
/// of its roles has a matching pattern and none of its roles denies it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub roles: BTreeMap<String, RoleRules>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoleRules {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

const READ_TOOLS: &[&str] = &[
    "fs.list",
    "fs.read_file",
    "fs.stat",
    "fs.search",
    "git.status",
    "git.diff",
    "git.log",
    "repo.detect",
    "artifact.*",
    "conn.*",
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Default for Policy {
    /// `viewer` reads; `developer` may call everything but `shell.exec`; `admin` everything.
    fn default() -> Self {
        let mut roles = BTreeMap::new();
        roles.insert(
            "viewer".into(),
            RoleRules {
                allow: strings(READ_TOOLS),
                deny: vec![],
            },
        );
        roles.insert(
            "developer".into(),
            RoleRules {
                allow: strings(&["fs.*", "git.*", "repo.*", "artifact.*", "conn.*"]),
                deny: strings(&["shell.exec"]),
            },
        );
        roles.insert(
            "admin".into(),
            RoleRules {
                allow: strings(&["*"]),
                deny: vec![],
            },
        );
        Policy { roles }
    }
}

fn matches(pattern: &str, tool: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => tool.starts_with(prefix),
        None => pattern == tool,
    }
}

impl Policy {
    /// Reads a policy file (JSON: `{"roles": {"ROLE": {"allow": [...], "deny": [...]}}}`).
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let data = std::fs::read(path)
            .map_err(|e| WorkspaceError::InvalidArgument(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&data)
            .map_err(|e| WorkspaceError::InvalidArgument(format!("{}: {e}", path.display())))
    }

    pub fn allows(&self, p: &Principal, tool: &str) -> bool {
        let rules: Vec<&RoleRules> = p.roles.iter().filter_map(|r| self.roles.get(r)).collect();
        !rules
            .iter()
            .any(|r| r.deny.iter().any(|d| matches(d, tool)))
            && rules
                .iter()
                .any(|r| r.allow.iter().any(|a| matches(a, tool)))
    }

    pub fn check(&self, p: &Principal, tool: &str) -> Result<()> {
        if self.allows(p, tool) {
            Ok(())
        } else {
            Err(WorkspaceError::PolicyDenied(format!(
                "{tool}: not allowed for roles [{}]",
                p.roles.join(", ")
            )))
        }
    }
}

/// The `extra_args` policy of a runner: argument count and length, shell metacharacters, and
/// which options may be passed.
#[derive(Debug, Clone)]
pub struct ExtraArgsPolicy {
    pub max_items: usize,
    pub max_len: usize,
    /// An option (starting with `-`) must start with one of these.
    pub allowed_prefixes: &'static [&'static str],
    /// Refused even when an allowed prefix matches.
    pub denied_prefixes: &'static [&'static str],
}

/// Refused in any extra argument (no shell sees them, but a runner might hand them to one).
pub const DENIED_METACHARACTERS: &[char] = &[
    ';', '&', '|', '`', '$', '<', '>', '\n', '\r', '\\', '\0', '*', '?', '(', ')', '{', '}',
];

impl ExtraArgsPolicy {
    pub fn check(&self, args: &[String]) -> Result<()> {
        let deny = |m: String| Err(WorkspaceError::PolicyDenied(m));
        if args.len() > self.max_items {
            return deny(format!(
                "extra_args: {} items, at most {} are allowed",
                args.len(),
                self.max_items
            ));
        }
        for (i, a) in args.iter().enumerate() {
            if a.len() > self.max_len {
                return deny(format!(
                    "extra_args[{i}]: longer than {} bytes",
                    self.max_len
                ));
            }
            if let Some(c) = a.chars().find(|c| DENIED_METACHARACTERS.contains(c)) {
                return deny(format!(
                    "extra_args[{i}]: {a:?} holds the denied character {c:?}"
                ));
            }
            if self.denied_prefixes.iter().any(|p| a.starts_with(p)) {
                return deny(format!("extra_args[{i}]: {a:?} is a denied option"));
            }
            if a.starts_with('-') && !self.allowed_prefixes.iter().any(|p| a.starts_with(p)) {
                return deny(format!(
                    "extra_args[{i}]: {a:?} is not an allowed option (allowed: {})",
                    self.allowed_prefixes.join(" ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn p(roles: &[&str]) -> Principal {
        Principal {
            tenant_id: "t".into(),
            actor_id: "a".into(),
            roles: strings(roles),
        }
    }

    #[test]
    fn default_roles() {
        let pol = Policy::default();
        assert!(pol.allows(&p(&["admin"]), "shell.exec"));
        assert!(!pol.allows(&p(&["developer"]), "shell.exec"));
        assert!(!pol.allows(&p(&["developer", "viewer"]), "shell.exec"));
        assert!(pol.allows(&p(&["developer"]), "fs.write_file"));
        assert!(pol.allows(&p(&["viewer"]), "fs.read_file"));
        assert!(!pol.allows(&p(&["viewer"]), "fs.write_file"));
        assert!(!pol.allows(&p(&[]), "fs.read_file"));
        assert!(!pol.allows(&p(&["nobody"]), "fs.read_file"));
        assert_eq!(
            pol.check(&p(&["developer"]), "shell.exec")
                .unwrap_err()
                .code(),
            ErrorCode::PolicyDenied
        );
    }

    #[test]
    fn extra_args() {
        let pol = ExtraArgsPolicy {
            max_items: 3,
            max_len: 10,
            allowed_prefixes: &["-k", "-x"],
            denied_prefixes: &["-p"],
        };
        assert!(pol.check(&strings(&["-k", "name"])).is_ok());
        for bad in [
            strings(&["a", "b", "c", "d"]),
            strings(&["averyveryverylongone"]),
            strings(&["a;rm"]),
            strings(&["$(x)"]),
            strings(&["--rootdir=/"]),
            strings(&["-pfoo"]),
        ] {
            assert_eq!(
                pol.check(&bad).unwrap_err().code(),
                ErrorCode::PolicyDenied,
                "{bad:?}"
            );
        }
    }
}
