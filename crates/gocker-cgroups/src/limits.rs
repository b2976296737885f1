//! OCI `LinuxResources` → cgroup v2 interface files (pure: testable without a cgroup).

use oci_spec::runtime::LinuxResources;

use crate::{CgroupError, Result};

/// One interface file write, e.g. `("memory.max", "33554432")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
}

fn w(controller: &'static str, file: &str, value: impl Into<String>) -> Write {
    Write {
        controller,
        file: file.to_owned(),
        value: value.into(),
    }
}

/// `-1` (and OCI's "unlimited") is `max` in cgroup v2.
fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// cgroup v1 `cpu.shares` (2..262144, default 1024) to v2 `cpu.weight` (1..10000, default 100),
/// the conversion runc, crun and the kernel documentation use.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// The writes that apply `r`, in order. Errors name the invalid value.
pub fn plan(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            if l == 0 || (0 < l && l < 6 * 1024 * 1024) {
                return Err(CgroupError::Invalid(format!(
                    "memory limit {l} bytes: the minimum is 6 MiB"
                )));
            }
            out.push(w("memory", "memory.max", limit(l)));
        }
        if let Some(res) = m.reservation() {
            out.push(w("memory", "memory.low", limit(res)));
        }
        if let Some(s) = m.swap() {
            // OCI and docker give memory+swap; cgroup v2 wants swap alone.
            let v = match (s, m.limit()) {
                (s, _) if s < 0 => "max".to_owned(),
                (s, Some(l)) if l > 0 => {
                    if s < l {
                        return Err(CgroupError::Invalid(format!(
                            "memory+swap limit {s} is smaller than the memory limit {l}"
                        )));
                    }
                    (s - l).to_string()
                }
                (s, _) => s.to_string(),
            };
            out.push(w("memory", "memory.swap.max", v));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares() {
            out.push(w("cpu", "cpu.weight", shares_to_weight(shares).to_string()));
        }
        if c.quota().is_some() || c.period().is_some() {
            let period = c.period().unwrap_or(100_000);
            if !(1000..=1_000_000).contains(&period) {
                return Err(CgroupError::Invalid(format!(
                    "cpu period {period}µs: must be 1000..=1000000"
                )));
            }
            let quota = match c.quota() {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            out.push(w("cpu", "cpu.max", format!("{quota} {period}")));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            out.push(w("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            out.push(w("cpuset", "cpuset.mems", mems));
        }
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        out.push(w(
            "pids",
            "pids.max",
            if l <= 0 { "max".into() } else { l.to_string() },
        ));
    }
    if let Some(b) = r.block_io() {
        if let Some(weight) = b.weight() {
            // blkio weight 10..1000 → io.weight 1..10000
            let v = 1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990;
            out.push(w("io", "io.weight", format!("default {v}")));
        }
        for (list, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for d in list.iter().flatten() {
                out.push(w(
                    "io",
                    "io.max",
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                ));
            }
        }
    }
    for (k, v) in r.unified().iter().flatten() {
        let controller = match k.split('.').next() {
            Some("memory") => "memory",
            Some("cpu") => "cpu",
            Some("cpuset") => "cpuset",
            Some("pids") => "pids",
            Some("io") => "io",
            Some("hugetlb") => "hugetlb",
            _ => {
                return Err(CgroupError::Invalid(format!(
                    "unified key {k:?}: unknown controller"
                )))
            }
        };
        out.push(w(controller, k, v.clone()));
    }
    Ok(out)
}

/// The controllers `writes` need, deduplicated, in a stable order.
pub fn required_controllers(writes: &[Write]) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    for wr in writes {
        if !v.contains(&wr.controller) {
            v.push(wr.controller);
        }
    }
    v
}

/// `base` with the values `update` sets (docker's `update`: each limit given replaces the
/// recorded one, the others stay). Memory, CPU and pids values are merged field by field; the
/// other parts of `update` (block I/O, hugepages, `unified`, ...) replace `base`'s when given.
pub fn merge(base: Option<&LinuxResources>, update: &LinuxResources) -> LinuxResources {
    let mut out = base.cloned().unwrap_or_default();
    if let Some(u) = update.memory() {
        let mut m = out.memory().unwrap_or_default();
        if let Some(v) = u.limit() {
            m.set_limit(Some(v));
        }
        if let Some(v) = u.swap() {
            m.set_swap(Some(v));
        }
        if let Some(v) = u.reservation() {
            m.set_reservation(Some(v));
        }
        out.set_memory(Some(m));
    }
    if let Some(u) = update.cpu() {
        let mut c = out.cpu().clone().unwrap_or_default();
        if let Some(v) = u.shares() {
            c.set_shares(Some(v));
        }
        if let Some(v) = u.quota() {
            c.set_quota(Some(v));
        }
        if let Some(v) = u.period() {
            c.set_period(Some(v));
        }
        if let Some(v) = u.cpus() {
            c.set_cpus(Some(v.clone()));
        }
        if let Some(v) = u.mems() {
            c.set_mems(Some(v.clone()));
        }
        out.set_cpu(Some(c));
    }
    if let Some(p) = update.pids() {
        out.set_pids(Some(*p));
    }
    if let Some(b) = update.block_io() {
        out.set_block_io(Some(b.clone()));
    }
    if let Some(h) = update.hugepage_limits() {
        out.set_hugepage_limits(Some(h.clone()));
    }
    if let Some(u) = update.unified() {
        let mut all = out.unified().clone().unwrap_or_default();
        all.extend(u.clone());
        out.set_unified(Some(all));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    #[test]
    fn docker_style_limits_map_to_v2_files() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(32 << 20)
                    .swap(64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000)
                    .period(100_000u64)
                    .shares(512u64)
                    .cpus("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
            .build()
            .unwrap();
        let p = plan(&r).unwrap();
        let files: Vec<(&str, &str)> = p
            .iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect();
        assert_eq!(
            files,
            [
                ("memory.max", "33554432"),
                ("memory.swap.max", "33554432"),
                ("cpu.weight", "20"),
                ("cpu.max", "50000 100000"),
                ("cpuset.cpus", "0"),
                ("pids.max", "20"),
            ]
        );
        assert_eq!(
            required_controllers(&p),
            ["memory", "cpu", "cpuset", "pids"]
        );
    }

    #[test]
    fn shares_conversion_matches_the_runtimes() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn invalid_values_are_named() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1024).build().unwrap())
            .build()
            .unwrap();
        assert!(plan(&r)
            .unwrap_err()
            .to_string()
            .contains("memory limit 1024 bytes"));
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(32 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert!(plan(&r)
            .unwrap_err()
            .to_string()
            .contains("smaller than the memory limit"));
    }

    #[test]
    fn unlimited_values_are_max() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(-1)
                    .swap(-1)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .build()
            .unwrap();
        let v: Vec<String> = plan(&r).unwrap().into_iter().map(|w| w.value).collect();
        assert_eq!(v, ["max", "max", "max"]);
    }

    #[test]
    fn merge_replaces_only_what_the_update_sets() {
        let base = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .swap(128 << 20)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
            .build()
            .unwrap();
        let update = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(96 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(LinuxCpuBuilder::default().shares(512u64).build().unwrap())
            .build()
            .unwrap();
        let m = merge(Some(&base), &update);
        assert_eq!(m.memory().unwrap().limit(), Some(96 << 20));
        assert_eq!(m.memory().unwrap().swap(), Some(128 << 20));
        assert_eq!(m.pids().unwrap().limit(), 20);
        assert_eq!(m.cpu().as_ref().unwrap().shares(), Some(512));
        // The swap total stays: memory.swap.max is recomputed from it.
        let files: Vec<(String, String)> = plan(&m)
            .unwrap()
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        assert!(files.contains(&("memory.swap.max".into(), (32u64 << 20).to_string())));
        // An update above the recorded memory+swap is refused by the plan, naming both.
        let big = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(256 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let e = plan(&merge(Some(&base), &big)).unwrap_err().to_string();
        assert!(e.contains("smaller than the memory limit"), "{e}");
        // Nothing recorded: the update is the whole.
        assert_eq!(
            merge(None, &update).memory().unwrap().limit(),
            Some(96 << 20)
        );
    }
}
