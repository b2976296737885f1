//! The container's seccomp filter: compiled once in ring0 (cached by profile hash), loaded by
//! ring2 as the last step before exec, its notifications served by ring1 (see `supervise`).

use std::time::Instant;

use gocker_seccomp::{compile_cached, Action, Bpf, Cache, CacheOutcome, Profile};
use oci_spec::runtime::Spec;

use crate::Result;

/// The spec's profile, when it has one.
pub fn spec_profile(spec: &Spec) -> Result<Option<Profile>> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Ok(Some(Profile::from_oci(s)?)),
        None => Ok(None),
    }
}

fn compile_profile(p: &Profile, notes: &mut Vec<String>) -> Result<Bpf> {
    let cache = Cache::user_default();
    let t = Instant::now();
    let (bpf, outcome, cache_err) = compile_cached(p, cache.as_ref())?;
    let how = match outcome {
        CacheOutcome::Hit => format!(
            "from the cache {}",
            cache
                .as_ref()
                .map(|c| c.dir().display().to_string())
                .unwrap_or_default()
        ),
        CacheOutcome::Miss => format!(
            "compiled and cached in {}",
            cache
                .as_ref()
                .map(|c| c.dir().display().to_string())
                .unwrap_or_default()
        ),
        CacheOutcome::Bypassed => "compiled (no cache)".to_owned(),
    };
    notes.push(format!(
        "seccomp: profile {} ({} rules), {} BPF instructions {how} in {:.1} ms{}",
        &bpf.hash[..16],
        p.rule_count(),
        bpf.len(),
        t.elapsed().as_secs_f64() * 1000.0,
        if bpf.listener {
            ", with a notification listener served by ring1"
        } else {
            ""
        }
    ));
    if let Some(e) = cache_err {
        notes.push(format!("seccomp cache not used: {e}"));
    }
    if !bpf.unknown.is_empty() {
        notes.push(format!(
            "seccomp: syscalls unknown to this libseccomp, skipped: {}",
            bpf.unknown.join(", ")
        ));
    }
    Ok(bpf)
}

/// Compiles the spec's `linux.seccomp`, if any.
pub fn compile_spec(spec: &Spec, notes: &mut Vec<String>) -> Result<Option<Bpf>> {
    match spec_profile(spec)? {
        Some(p) => Ok(Some(compile_profile(&p, notes)?)),
        None => Ok(None),
    }
}

/// For `gocker exec`, which has no supervisor to answer notifications: the same profile with
/// every notify action turned into EPERM.
pub fn compile_spec_without_notify(spec: &Spec, notes: &mut Vec<String>) -> Result<Option<Bpf>> {
    let Some(mut p) = spec_profile(spec)? else {
        return Ok(None);
    };
    if p.default_action == Action::Notify {
        p.default_action = Action::Errno(libc::EPERM as u32);
    }
    for r in &mut p.rules {
        if r.action == Action::Notify {
            r.action = Action::Errno(libc::EPERM as u32);
        }
    }
    Ok(Some(compile_profile(&p, notes)?))
}
