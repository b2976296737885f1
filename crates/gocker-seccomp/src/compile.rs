//! Compiling a [`Profile`] to a classic BPF program with libseccomp, and a cache of compiled
//! programs keyed by the profile's hash so that a second container start does not recompile.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::profile::hex;
use crate::{Action, Op, Profile, Result, SeccompError};

/// A compiled program: `struct sock_filter` instructions in native byte order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bpf {
    /// The profile's hash ([`Profile::hash`]).
    pub hash: String,
    /// As a hex string in JSON (the cache, container.json): parsing ~10 000 numbers on every
    /// start cost more than the filter load itself.
    #[serde(with = "hex_bytes")]
    pub program: Vec<u8>,
    /// Load with SECCOMP_FILTER_FLAG_NEW_LISTENER: some rule notifies.
    pub listener: bool,
    /// OCI filter flags to load with (`SECCOMP_FILTER_FLAG_LOG`, `..._SPEC_ALLOW`).
    pub flags: Vec<String>,
    /// Syscall names the installed libseccomp does not know (skipped, like runc does).
    pub unknown: Vec<String>,
}

impl Bpf {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len() / 8
    }
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Libseccomp { what, source }
}

fn scmp_action(a: Action) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(e) => ScmpAction::Errno(e as i32),
        Action::KillProcess => ScmpAction::KillProcess,
        Action::KillThread => ScmpAction::KillThread,
        Action::Trap => ScmpAction::Trap,
        Action::Trace(v) => ScmpAction::Trace(v as u16),
        Action::Log => ScmpAction::Log,
        Action::Notify => ScmpAction::Notify,
    }
}

fn scmp_op(op: Op, value: u64) -> ScmpCompareOp {
    match op {
        Op::NotEqual => ScmpCompareOp::NotEqual,
        Op::LessThan => ScmpCompareOp::Less,
        Op::LessEqual => ScmpCompareOp::LessOrEqual,
        Op::Equal => ScmpCompareOp::Equal,
        Op::GreaterEqual => ScmpCompareOp::GreaterEqual,
        Op::GreaterThan => ScmpCompareOp::Greater,
        Op::MaskedEqual => ScmpCompareOp::MaskedEqual(value),
    }
}

/// Compiles `p` (conditions already resolved, see [`Profile::resolve`]) for the architectures it
/// names (the native one when it names none). Works with zero rules.
pub fn compile(p: &Profile) -> Result<Bpf> {
    let mut ctx =
        ScmpFilterContext::new(scmp_action(p.default_action)).map_err(lib("seccomp_init"))?;
    // gocker sets no_new_privs itself, in its order; the filter must not do it implicitly.
    ctx.set_ctl_nnp(false).map_err(lib("SCMP_FLTATR_CTL_NNP"))?;
    // A binary tree of syscall numbers instead of a linear scan (libseccomp >= 2.5). With fewer
    // rules it makes no difference, and older libraries refuse the attribute: keep the default then.
    if p.rule_count() > 16 {
        let _ = ctx.set_ctl_optimize(2);
    }
    let native = ScmpArch::native();
    for a in &p.architectures {
        for name in std::iter::once(&a.arch).chain(a.sub.iter()) {
            let arch =
                ScmpArch::from_str(name).map_err(|_| SeccompError::UnknownArch(name.clone()))?;
            if arch == native || arch == ScmpArch::Native {
                continue;
            }
            ctx.add_arch(arch)
                .map_err(lib(format!("add architecture {name}")))?;
        }
    }
    let mut unknown = Vec::new();
    for rule in &p.rules {
        // libseccomp refuses a rule whose action equals the default one; it would be a no-op.
        if rule.action == p.default_action {
            continue;
        }
        let conds: Vec<ScmpArgCompare> = rule
            .args
            .iter()
            .map(|a| {
                ScmpArgCompare::new(
                    a.index,
                    scmp_op(a.op, a.value),
                    if a.op == Op::MaskedEqual {
                        a.value_two
                    } else {
                        a.value
                    },
                )
            })
            .collect();
        for name in &rule.names {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                unknown.push(name.clone());
                continue;
            };
            let action = scmp_action(rule.action);
            let r = if conds.is_empty() {
                ctx.add_rule(action, sc)
            } else {
                ctx.add_rule_conditional(action, sc, &conds)
            };
            r.map_err(lib(format!("add rule for {name} ({:?})", rule.action)))?;
        }
    }
    // seccomp_export_bpf_mem needs libseccomp 2.6: export into a memfd and read it back.
    let memfd = rustix::fs::memfd_create("gocker-seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| SeccompError::sys("memfd_create", "BPF export", e))?;
    ctx.export_bpf(&memfd).map_err(lib("seccomp_export_bpf"))?;
    let mut f = std::fs::File::from(memfd);
    let mut program = Vec::new();
    std::io::Seek::rewind(&mut f)
        .and_then(|_| std::io::Read::read_to_end(&mut f, &mut program))
        .map_err(|e| SeccompError::sys("read", "exported BPF", e))?;
    if !program.len().is_multiple_of(8) || program.len() / 8 > 4096 {
        return Err(SeccompError::BadProgram(program.len()));
    }
    Ok(Bpf {
        hash: p.hash(),
        program,
        listener: p.needs_listener(),
        flags: p.flags.clone(),
        unknown,
    })
}

/// Where compiled programs are kept: `$XDG_CACHE_HOME/gocker/seccomp` (else `~/.cache/...`).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// Whether [`compile_cached`] compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    /// Compiled and stored.
    Miss,
    /// Compiled; the cache could not be used (the reason went to the caller's notes).
    Bypassed,
}

/// Version 02: the program is a hex string (01 had a JSON array of numbers; such entries are
/// ignored and recompiled).
const MAGIC: &[u8; 8] = b"GKSCMP02";

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::profile::hex(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        crate::profile::unhex(&s)
            .ok_or_else(|| serde::de::Error::custom("program: not a hex string"))
    }
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// The per-user default, or `None` without `$XDG_CACHE_HOME` and `$HOME`.
    pub fn user_default() -> Option<Cache> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(Cache::new(base.join("gocker/seccomp")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key covers the profile, the libseccomp version and the architecture: a library update
    /// recompiles.
    fn key(&self, p: &Profile) -> String {
        let v = libseccomp::ScmpVersion::current()
            .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
            .unwrap_or_default();
        let mut h = Sha256::new();
        // The format too: binaries of two formats sharing a cache would evict each other.
        h.update(MAGIC);
        h.update(p.hash().as_bytes());
        h.update(v.as_bytes());
        h.update(std::env::consts::ARCH.as_bytes());
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        hex(&h.finalize())
    }

    fn path(&self, p: &Profile) -> PathBuf {
        self.dir.join(format!("{}.bpf", self.key(p)))
    }

    /// A stored program, verified against its checksum; `None` when absent or damaged.
    fn get(&self, p: &Profile) -> Option<Bpf> {
        let data = std::fs::read(self.path(p)).ok()?;
        let (head, rest) = data.split_at_checked(8 + 32)?;
        if &head[..8] != MAGIC || Sha256::digest(rest).as_slice() != &head[8..] {
            return None;
        }
        let bpf: Bpf = serde_json::from_slice(rest).ok()?;
        (bpf.hash == p.hash()).then_some(bpf)
    }

    /// Stores atomically (temporary file + rename) in a directory only the owner can write.
    fn put(&self, p: &Profile, bpf: &Bpf) -> Result<()> {
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| SeccompError::Cache { path, source }
        };
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(err(&self.dir))?;
        let meta = std::fs::metadata(&self.dir).map_err(err(&self.dir))?;
        if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(err(&self.dir))?;
            let meta = std::fs::metadata(&self.dir).map_err(err(&self.dir))?;
            if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
                return Err(SeccompError::Cache {
                    path: self.dir.clone(),
                    source: std::io::Error::other("not owned by this user or writable by others"),
                });
            }
        }
        let body = serde_json::to_vec(bpf).expect("serialises");
        let final_path = self.path(p);
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", bpf.hash, std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&Sha256::digest(&body))?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &final_path)
        };
        let r = write();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r.map_err(err(&final_path))
    }
}

/// Compiles `p`, or takes the program from `cache` when it holds one for this profile.
/// A cache that cannot be written does not fail the compilation: the outcome says `Bypassed` and
/// the error is returned alongside for the caller's notes.
pub fn compile_cached(
    p: &Profile,
    cache: Option<&Cache>,
) -> Result<(Bpf, CacheOutcome, Option<SeccompError>)> {
    let Some(cache) = cache else {
        return Ok((compile(p)?, CacheOutcome::Bypassed, None));
    };
    if let Some(b) = cache.get(p) {
        return Ok((b, CacheOutcome::Hit, None));
    }
    let bpf = compile(p)?;
    match cache.put(p, &bpf) {
        Ok(()) => Ok((bpf, CacheOutcome::Miss, None)),
        Err(e) => Ok((bpf, CacheOutcome::Bypassed, Some(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{builtin, Rule};

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gocker-seccomp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn programs_travel_as_hex_strings() {
        let b = Bpf {
            hash: "h".into(),
            program: vec![0x00, 0x0f, 0xa5, 0xff],
            listener: false,
            flags: vec![],
            unknown: vec![],
        };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["program"], "000fa5ff");
        assert_eq!(serde_json::from_value::<Bpf>(v).unwrap(), b);
        let bad = serde_json::json!({"hash": "h", "program": "0g", "listener": false, "flags": [], "unknown": []});
        assert!(serde_json::from_value::<Bpf>(bad).is_err());
        assert_eq!(crate::profile::unhex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(crate::profile::unhex("abc"), None);
    }

    #[test]
    fn zero_rules_compile() {
        for default in [Action::Allow, Action::Errno(1), Action::KillProcess] {
            let p = Profile {
                default_action: default,
                architectures: Vec::new(),
                flags: Vec::new(),
                rules: Vec::new(),
            };
            let b = compile(&p).unwrap();
            assert!(
                b.len() >= 3,
                "arch check + default return: {} instructions",
                b.len()
            );
            assert!(!b.listener);
        }
    }

    #[test]
    fn builtin_profiles_compile_and_skip_unknown_names() {
        for p in [builtin::default_profile(), builtin::strict_profile()] {
            let b = compile(&p.resolve(&[])).unwrap();
            assert!(b.len() > 100, "{}", b.len());
        }
        let mut p = builtin::strict_profile();
        p.rules
            .push(Rule::new(&["no_such_syscall_xyz"], Action::Allow));
        assert_eq!(compile(&p).unwrap().unknown, ["no_such_syscall_xyz"]);
    }

    #[test]
    fn cache_hits_the_second_time_and_survives_damage() {
        let dir = tmpdir("cache");
        let cache = Cache::new(&dir);
        let p = builtin::default_profile().resolve(&[]);
        let (a, o1, e1) = compile_cached(&p, Some(&cache)).unwrap();
        assert_eq!((o1, e1.is_none()), (CacheOutcome::Miss, true));
        let (b, o2, _) = compile_cached(&p, Some(&cache)).unwrap();
        assert_eq!(o2, CacheOutcome::Hit);
        assert_eq!(a, b);
        // Another profile is another entry.
        let (_, o3, _) = compile_cached(&builtin::strict_profile(), Some(&cache)).unwrap();
        assert_eq!(o3, CacheOutcome::Miss);
        // A damaged entry is not trusted: recompiled and rewritten.
        let f = cache.path(&p);
        let mut data = std::fs::read(&f).unwrap();
        let n = data.len();
        data[n - 3] ^= 0xff;
        std::fs::write(&f, data).unwrap();
        assert_eq!(
            compile_cached(&p, Some(&cache)).unwrap().1,
            CacheOutcome::Miss
        );
        assert_eq!(
            compile_cached(&p, Some(&cache)).unwrap().1,
            CacheOutcome::Hit
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
