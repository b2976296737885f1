//! The policy model and its conversions: OCI `LinuxSeccomp` both ways, docker/podman profile JSON
//! (with `archMap`, `includes`/`excludes`) in.

use std::path::Path;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Result, SeccompError};

/// What the filter does with a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    /// Fail the call with this errno (e.g. 1, EPERM).
    Errno(u32),
    KillProcess,
    KillThread,
    /// SIGSYS to the caller.
    Trap,
    /// Notify a ptrace tracer with this value.
    Trace(u32),
    /// Allow and log.
    Log,
    /// Ask the user-space supervisor (SECCOMP_RET_USER_NOTIF).
    Notify,
}

/// A comparison operator on one system-call argument (libseccomp's `SCMP_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    NotEqual,
    LessThan,
    LessEqual,
    Equal,
    GreaterEqual,
    GreaterThan,
    /// `(arg & value) == value_two`.
    MaskedEqual,
}

/// A condition on argument `index` (0..=5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: Op,
}

/// docker's conditional inclusion of a rule: by capabilities in the bounding set, by
/// architecture, by minimum kernel version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CondFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl CondFilter {
    fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// One rule: these syscalls, when every argument condition holds, get `action`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    #[serde(default, skip_serializing_if = "CondFilter::is_empty")]
    pub includes: CondFilter,
    #[serde(default, skip_serializing_if = "CondFilter::is_empty")]
    pub excludes: CondFilter,
}

impl Rule {
    pub fn new(names: &[&str], action: Action) -> Rule {
        Rule {
            names: names.iter().map(|s| s.to_string()).collect(),
            action,
            args: Vec::new(),
            includes: CondFilter::default(),
            excludes: CondFilter::default(),
        }
    }
    pub fn with_arg(mut self, index: u32, op: Op, value: u64, value_two: u64) -> Rule {
        self.args.push(Arg {
            index,
            value,
            value_two,
            op,
        });
        self
    }
}

/// An architecture with the sub-architectures (other ABIs of the same CPU) it implies,
/// as docker's `archMap`. Names are libseccomp's (`SCMP_ARCH_X86_64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArchSpec {
    pub arch: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub: Vec<String>,
}

/// A seccomp policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Profile {
    pub default_action: Action,
    /// Empty: the native architecture only.
    #[serde(default)]
    pub architectures: Vec<ArchSpec>,
    /// OCI filter flags (`SECCOMP_FILTER_FLAG_LOG`, `..._SPEC_ALLOW`, ...).
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn oci_action(a: Action) -> (LinuxSeccompAction, Option<u32>) {
    match a {
        Action::Allow => (LinuxSeccompAction::ScmpActAllow, None),
        Action::Errno(e) => (LinuxSeccompAction::ScmpActErrno, Some(e)),
        Action::KillProcess => (LinuxSeccompAction::ScmpActKillProcess, None),
        Action::KillThread => (LinuxSeccompAction::ScmpActKillThread, None),
        Action::Trap => (LinuxSeccompAction::ScmpActTrap, None),
        Action::Trace(v) => (LinuxSeccompAction::ScmpActTrace, Some(v)),
        Action::Log => (LinuxSeccompAction::ScmpActLog, None),
        Action::Notify => (LinuxSeccompAction::ScmpActNotify, None),
    }
}

fn from_oci_action(a: LinuxSeccompAction, ret: Option<u32>) -> Action {
    match a {
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        // The OCI/libseccomp default for an errno action without a value is EPERM.
        LinuxSeccompAction::ScmpActErrno => Action::Errno(ret.unwrap_or(libc::EPERM as u32)),
        LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            Action::KillThread
        }
        LinuxSeccompAction::ScmpActTrap => Action::Trap,
        LinuxSeccompAction::ScmpActTrace => Action::Trace(ret.unwrap_or(0)),
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActNotify => Action::Notify,
    }
}

fn parse_action(name: &str, ret: Option<u32>) -> Result<Action> {
    let a: LinuxSeccompAction = serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| SeccompError::UnknownAction(name.into()))?;
    Ok(from_oci_action(a, ret))
}

fn oci_op(o: Op) -> LinuxSeccompOperator {
    match o {
        Op::NotEqual => LinuxSeccompOperator::ScmpCmpNe,
        Op::LessThan => LinuxSeccompOperator::ScmpCmpLt,
        Op::LessEqual => LinuxSeccompOperator::ScmpCmpLe,
        Op::Equal => LinuxSeccompOperator::ScmpCmpEq,
        Op::GreaterEqual => LinuxSeccompOperator::ScmpCmpGe,
        Op::GreaterThan => LinuxSeccompOperator::ScmpCmpGt,
        Op::MaskedEqual => LinuxSeccompOperator::ScmpCmpMaskedEq,
    }
}

fn from_oci_op(o: LinuxSeccompOperator) -> Op {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => Op::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => Op::LessThan,
        LinuxSeccompOperator::ScmpCmpLe => Op::LessEqual,
        LinuxSeccompOperator::ScmpCmpEq => Op::Equal,
        LinuxSeccompOperator::ScmpCmpGe => Op::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => Op::GreaterThan,
        LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEqual,
    }
}

fn parse_op(name: &str) -> Result<Op> {
    let o: LinuxSeccompOperator =
        serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| SeccompError::UnknownOp(name.into()))?;
    Ok(from_oci_op(o))
}

fn oci_arch(name: &str) -> Result<Arch> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| SeccompError::UnknownArch(name.into()))
}

fn arch_name(a: Arch) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The libseccomp name of the architecture this program runs on.
pub fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "x86" => "SCMP_ARCH_X86",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390x" => "SCMP_ARCH_S390X",
        "powerpc64" => "SCMP_ARCH_PPC64LE",
        "loongarch64" => "SCMP_ARCH_LOONGARCH64",
        _ => "SCMP_ARCH_NATIVE",
    }
}

/// (major, minor) of the running kernel.
fn kernel_version() -> (u32, u32) {
    let u = rustix::system::uname();
    parse_kernel(&u.release().to_string_lossy())
}

fn parse_kernel(s: &str) -> (u32, u32) {
    let mut it = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

impl Profile {
    /// Number of (syscall name, rule) pairs.
    pub fn rule_count(&self) -> usize {
        self.rules.iter().map(|r| r.names.len()).sum()
    }

    /// Whether any rule (or the default) asks the user-space supervisor.
    pub fn needs_listener(&self) -> bool {
        self.default_action == Action::Notify
            || self.rules.iter().any(|r| r.action == Action::Notify)
    }

    /// sha256 of the profile's canonical JSON (hex): names it in `--debug` and keys the BPF cache.
    pub fn hash(&self) -> String {
        let body = serde_json::to_vec(self).expect("a profile serialises");
        hex(&Sha256::digest(&body))
    }

    /// The profile with docker's conditions evaluated for a process whose bounding set is `caps`
    /// (names such as `CAP_SYS_ADMIN`) on the native architecture and the running kernel, and
    /// with the architecture map flattened: what OCI can express.
    pub fn resolve(&self, caps: &[String]) -> Profile {
        self.resolve_for(caps, native_arch(), kernel_version())
    }

    pub fn resolve_for(&self, caps: &[String], arch: &str, kernel: (u32, u32)) -> Profile {
        let has = |c: &String| caps.iter().any(|x| x.eq_ignore_ascii_case(c));
        let arch_l = arch.to_ascii_lowercase();
        let arch_matches = |list: &[String]| {
            list.iter().any(|a| {
                let a = a.to_ascii_lowercase();
                a == arch_l
                    || arch_l.ends_with(&format!("_{a}"))
                    || (a == "amd64" && arch_l.ends_with("x86_64"))
            })
        };
        let rules = self
            .rules
            .iter()
            .filter(|r| {
                let inc = &r.includes;
                if !inc.caps.iter().all(has) {
                    return false;
                }
                if !inc.arches.is_empty() && !arch_matches(&inc.arches) {
                    return false;
                }
                if let Some(min) = &inc.min_kernel {
                    if kernel < parse_kernel(min) {
                        return false;
                    }
                }
                let exc = &r.excludes;
                if exc.caps.iter().any(has) || (!exc.arches.is_empty() && arch_matches(&exc.arches))
                {
                    return false;
                }
                if let Some(min) = &exc.min_kernel {
                    if kernel >= parse_kernel(min) {
                        return false;
                    }
                }
                true
            })
            .map(|r| Rule {
                includes: CondFilter::default(),
                excludes: CondFilter::default(),
                ..r.clone()
            })
            .collect();
        // docker's archMap: an entry with sub-architectures applies only on its own architecture;
        // plain entries (OCI's list) always apply.
        let mut architectures = Vec::new();
        for a in self
            .architectures
            .iter()
            .filter(|a| a.sub.is_empty() || a.arch.eq_ignore_ascii_case(arch))
        {
            for name in std::iter::once(&a.arch).chain(a.sub.iter()) {
                let spec = ArchSpec {
                    arch: name.clone(),
                    sub: Vec::new(),
                };
                if !architectures.contains(&spec) {
                    architectures.push(spec);
                }
            }
        }
        Profile {
            default_action: self.default_action,
            architectures,
            flags: self.flags.clone(),
            rules,
        }
    }

    /// As OCI `linux.seccomp`. Conditions (`includes`/`excludes`) must have been resolved
    /// ([`Profile::resolve`]); a profile that still has them is an error naming the rule.
    pub fn to_oci(&self) -> Result<LinuxSeccomp> {
        let bad = |reason: String| SeccompError::Profile {
            source_name: "to OCI".into(),
            reason,
        };
        let (default, default_ret) = oci_action(self.default_action);
        let mut archs = Vec::new();
        for a in &self.architectures {
            for n in std::iter::once(&a.arch).chain(a.sub.iter()) {
                let arch = oci_arch(n)?;
                if !archs.contains(&arch) {
                    archs.push(arch);
                }
            }
        }
        let flags = self
            .flags
            .iter()
            .map(|f| {
                serde_json::from_value::<LinuxSeccompFilterFlag>(serde_json::Value::String(
                    f.clone(),
                ))
                .map_err(|_| bad(format!("unknown filter flag {f:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut syscalls = Vec::new();
        for r in &self.rules {
            if !r.includes.is_empty() || !r.excludes.is_empty() {
                return Err(bad(format!(
                    "rule for {:?} has docker conditions: resolve the profile first",
                    r.names
                )));
            }
            let (action, ret) = oci_action(r.action);
            let mut s = LinuxSyscall::default();
            s.set_names(r.names.clone());
            s.set_action(action);
            s.set_errno_ret(ret);
            if !r.args.is_empty() {
                s.set_args(Some(
                    r.args
                        .iter()
                        .map(|a| {
                            let mut b = LinuxSeccompArgBuilder::default()
                                .index(a.index as usize)
                                .value(a.value)
                                .op(oci_op(a.op));
                            if a.value_two != 0 {
                                b = b.value_two(a.value_two);
                            }
                            b.build().expect("all fields set")
                        })
                        .collect(),
                ));
            }
            syscalls.push(s);
        }
        let mut out = LinuxSeccomp::default();
        out.set_default_action(default);
        out.set_default_errno_ret(default_ret);
        out.set_architectures(Some(archs).filter(|a| !a.is_empty()));
        out.set_flags(Some(flags).filter(|f| !f.is_empty()));
        out.set_syscalls(Some(syscalls).filter(|s| !s.is_empty()));
        Ok(out)
    }

    /// From OCI `linux.seccomp`.
    pub fn from_oci(s: &LinuxSeccomp) -> Result<Profile> {
        let mut rules = Vec::new();
        for sc in s.syscalls().iter().flatten() {
            let mut args = Vec::new();
            for a in sc.args().iter().flatten() {
                if a.index() > 5 {
                    return Err(SeccompError::ArgIndex {
                        syscall: sc.names().join(","),
                        index: a.index() as u32,
                    });
                }
                args.push(Arg {
                    index: a.index() as u32,
                    value: a.value(),
                    value_two: a.value_two().unwrap_or(0),
                    op: from_oci_op(a.op()),
                });
            }
            rules.push(Rule {
                names: sc.names().clone(),
                action: from_oci_action(sc.action(), sc.errno_ret()),
                args,
                includes: CondFilter::default(),
                excludes: CondFilter::default(),
            });
        }
        Ok(Profile {
            default_action: from_oci_action(s.default_action(), s.default_errno_ret()),
            architectures: s
                .architectures()
                .iter()
                .flatten()
                .map(|a| ArchSpec {
                    arch: arch_name(*a),
                    sub: Vec::new(),
                })
                .collect(),
            flags: s
                .flags()
                .iter()
                .flatten()
                .map(|f| {
                    serde_json::to_value(f)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .collect(),
            rules,
        })
    }

    /// Parses a docker/podman seccomp profile (which OCI's `linux.seccomp` JSON is a subset of).
    /// `source_name` (a path, or a profile name) is used in errors.
    pub fn from_docker_json(text: &str, source_name: &str) -> Result<Profile> {
        let d: DockerProfile = serde_json::from_str(text).map_err(|e| SeccompError::Profile {
            source_name: source_name.to_owned(),
            reason: e.to_string(),
        })?;
        let ctx = |e: SeccompError| SeccompError::Profile {
            source_name: source_name.to_owned(),
            reason: e.to_string(),
        };
        let mut architectures: Vec<ArchSpec> = d
            .arch_map
            .iter()
            .map(|m| ArchSpec {
                arch: m.architecture.clone(),
                sub: m.sub_architectures.clone(),
            })
            .collect();
        for a in &d.architectures {
            if !architectures.iter().any(|x| &x.arch == a) {
                architectures.push(ArchSpec {
                    arch: a.clone(),
                    sub: Vec::new(),
                });
            }
        }
        for a in &architectures {
            for n in std::iter::once(&a.arch).chain(a.sub.iter()) {
                oci_arch(n).map_err(ctx)?;
            }
        }
        let mut rules = Vec::new();
        for s in &d.syscalls {
            let mut names = s.names.clone();
            if let Some(n) = &s.name {
                names.push(n.clone());
            }
            let mut args = Vec::new();
            for a in &s.args {
                if a.index > 5 {
                    return Err(ctx(SeccompError::ArgIndex {
                        syscall: names.join(","),
                        index: a.index,
                    }));
                }
                args.push(Arg {
                    index: a.index,
                    value: a.value,
                    value_two: a.value_two,
                    op: parse_op(&a.op).map_err(ctx)?,
                });
            }
            rules.push(Rule {
                names,
                action: parse_action(&s.action, s.errno_ret).map_err(ctx)?,
                args,
                includes: s.includes.clone().into(),
                excludes: s.excludes.clone().into(),
            });
        }
        Ok(Profile {
            default_action: parse_action(&d.default_action, d.default_errno_ret).map_err(ctx)?,
            architectures,
            flags: d.flags,
            rules,
        })
    }

    /// Writes the profile in docker's format (lossless for this model).
    pub fn to_docker_json(&self) -> String {
        let action = |a: Action| {
            let (oci, ret) = oci_action(a);
            (
                serde_json::to_value(oci)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                ret,
            )
        };
        let (default_action, default_errno_ret) = action(self.default_action);
        let d = DockerProfile {
            default_action,
            default_errno_ret,
            architectures: Vec::new(),
            arch_map: self
                .architectures
                .iter()
                .map(|a| DockerArchMap {
                    architecture: a.arch.clone(),
                    sub_architectures: a.sub.clone(),
                })
                .collect(),
            flags: self.flags.clone(),
            syscalls: self
                .rules
                .iter()
                .map(|r| {
                    let (a, ret) = action(r.action);
                    DockerSyscall {
                        names: r.names.clone(),
                        name: None,
                        action: a,
                        errno_ret: ret,
                        args: r
                            .args
                            .iter()
                            .map(|x| DockerArg {
                                index: x.index,
                                value: x.value,
                                value_two: x.value_two,
                                op: serde_json::to_value(oci_op(x.op))
                                    .ok()
                                    .and_then(|v| v.as_str().map(str::to_owned))
                                    .unwrap_or_default(),
                            })
                            .collect(),
                        includes: r.includes.clone().into(),
                        excludes: r.excludes.clone().into(),
                    }
                })
                .collect(),
        };
        serde_json::to_string_pretty(&d).expect("serialises")
    }

    /// Reads a profile file (docker or OCI JSON).
    pub fn load_file(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SeccompError::sys("read", path.display().to_string(), e))?;
        Profile::from_docker_json(&text, &path.display().to_string())
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

/// The bytes of a lowercase or uppercase hex string; `None` when it is not one.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    arch_map: Vec<DockerArchMap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
    #[serde(default)]
    syscalls: Vec<DockerSyscall>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<DockerArg>,
    #[serde(default, skip_serializing_if = "DockerFilter::is_empty")]
    includes: DockerFilter,
    #[serde(default, skip_serializing_if = "DockerFilter::is_empty")]
    excludes: DockerFilter,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_kernel: Option<String>,
}

impl DockerFilter {
    fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

impl From<DockerFilter> for CondFilter {
    fn from(d: DockerFilter) -> Self {
        CondFilter {
            caps: d.caps,
            arches: d.arches,
            min_kernel: d.min_kernel,
        }
    }
}
impl From<CondFilter> for DockerFilter {
    fn from(d: CondFilter) -> Self {
        DockerFilter {
            caps: d.caps,
            arches: d.arches,
            min_kernel: d.min_kernel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/docker-default.json");

    fn docker_caps() -> Vec<String> {
        [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn docker_profile_loads_and_round_trips_through_oci() {
        let p = Profile::from_docker_json(FIXTURE, "fixture").unwrap();
        assert_eq!(p.default_action, Action::Errno(1));
        assert!(p.rule_count() > 300, "{}", p.rule_count());
        assert_eq!(p.architectures[0].arch, "SCMP_ARCH_X86_64");
        assert!(p
            .rules
            .iter()
            .any(|r| !r.args.is_empty() && r.args.iter().any(|a| a.op == Op::MaskedEqual)));
        // docker's format itself round-trips without loss, conditions included.
        assert_eq!(
            Profile::from_docker_json(&p.to_docker_json(), "again").unwrap(),
            p
        );

        let r = p.resolve_for(&docker_caps(), "SCMP_ARCH_X86_64", (6, 1));
        // Conditions were evaluated: CAP_SYS_ADMIN-only rules are gone, unconditional ones stay.
        assert!(r.rule_count() < p.rule_count());
        assert!(r
            .rules
            .iter()
            .all(|x| x.includes.is_empty() && x.excludes.is_empty()));
        assert!(
            !r.rules.iter().any(|x| x.names.iter().any(|n| n == "bpf")),
            "bpf is CAP_SYS_ADMIN/BPF only"
        );
        assert!(r.rules.iter().any(|x| x.names.iter().any(|n| n == "read")));
        assert_eq!(
            r.architectures.len(),
            3,
            "archMap flattened: {:?}",
            r.architectures
        );

        let oci = r.to_oci().unwrap();
        let text = serde_json::to_string(&oci).unwrap();
        let back: LinuxSeccomp = serde_json::from_str(&text).unwrap();
        assert_eq!(back, oci);
        assert_eq!(
            Profile::from_oci(&back).unwrap(),
            r,
            "OCI round trip lost something"
        );
        assert_eq!(Profile::from_oci(&back).unwrap().hash(), r.hash());
        // With CAP_SYS_ADMIN the conditional rules come back.
        let mut caps = docker_caps();
        caps.push("CAP_SYS_ADMIN".into());
        assert!(
            p.resolve_for(&caps, "SCMP_ARCH_X86_64", (6, 1))
                .rule_count()
                > r.rule_count()
        );
    }

    #[test]
    fn errors_name_the_value() {
        let e = Profile::from_docker_json(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, "p.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.json") && e.contains("SCMP_ACT_NOPE"), "{e}");
        let e = Profile::from_docker_json(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","args":[{"index":7,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#, "q.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("index 7") && e.contains('x'), "{e}");
        let conditional = Profile {
            rules: vec![Rule {
                includes: CondFilter {
                    caps: vec!["CAP_BPF".into()],
                    ..Default::default()
                },
                ..Rule::new(&["bpf"], Action::Allow)
            }],
            ..Profile::from_docker_json(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#, "x").unwrap()
        };
        assert!(conditional
            .to_oci()
            .unwrap_err()
            .to_string()
            .contains("bpf"));
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(parse_kernel("6.18.44-fc-v669"), (6, 18));
        assert_eq!(parse_kernel("4.8"), (4, 8));
    }
}
