//! `gocker info`: what this host supports, checked for real, with what to change when something
//! is missing. Every check reads the kernel's own answer (sysctls, mountinfo, cgroup files,
//! /etc/subuid), never a guess from the distribution.

use std::path::Path;

use serde::Serialize;

use crate::cli::InfoArgs;

/// How bad a failed check is: FAIL when something gocker needs by default cannot work (the
/// default falls back, or nothing works), WARN when a feature or a fallback is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    level: Level,
    detail: String,
    /// What to do when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        name,
        ok,
        level: if ok { Level::Ok } else { Level::Warn },
        detail: detail.into(),
        fix: if ok { None } else { fix },
    }
}

/// A check that is a FAIL (not a WARN) when not ok.
fn must(mut c: Check) -> Check {
    if !c.ok {
        c.level = Level::Fail;
    }
    c
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn user_namespaces() -> Check {
    let max = read("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse::<u64>().ok());
    let debian_knob = read("/proc/sys/kernel/unprivileged_userns_clone");
    let apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let mut problems = Vec::new();
    if max == Some(0) {
        problems.push("user.max_user_namespaces is 0".to_owned());
    }
    if debian_knob.as_deref() == Some("0") {
        problems.push("kernel.unprivileged_userns_clone is 0".to_owned());
    }
    if apparmor.as_deref() == Some("1") {
        problems.push("AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+)".to_owned());
    }
    let detail = if problems.is_empty() {
        format!(
            "allowed (max_user_namespaces {})",
            max.map(|m| m.to_string()).unwrap_or_else(|| "?".into())
        )
    } else {
        problems.join("; ")
    };
    let fix = "sysctl -w user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1; on Ubuntu add an AppArmor \
               profile with `userns,` for gocker or set kernel.apparmor_restrict_unprivileged_userns=0"
        .to_owned();
    check("user namespaces", problems.is_empty(), detail, Some(fix))
}

fn subids(uid: u32) -> Vec<Check> {
    let name = crate::host::user_name(uid);
    let mut out = Vec::new();
    for (file, label) in [
        ("/etc/subuid", "subordinate uids"),
        ("/etc/subgid", "subordinate gids"),
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let ranges = gocker_idmap::parse_subid(file, &text, &name, uid).unwrap_or_default();
        let count: u64 = ranges.iter().map(|r| u64::from(r.count)).sum();
        let detail = if count > 0 {
            format!("{count} ids for {name} in {file}")
        } else {
            format!(
                "none for {name} in {file}: rootless containers map a single id (only root inside)"
            )
        };
        let fix = format!("usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}");
        out.push(check(
            label,
            count > 0 || uid == 0,
            if uid == 0 {
                "not needed as root".into()
            } else {
                detail
            },
            Some(fix),
        ));
    }
    for helper in ["newuidmap", "newgidmap"] {
        let found = gocker_idmap::find_helper(helper);
        let detail = match &found {
            Some(p) => p.display().to_string(),
            None => "not installed".into(),
        };
        out.push(check(
            helper,
            found.is_some() || uid == 0,
            detail,
            Some("apt-get install uidmap".into()),
        ));
    }
    out
}

fn cgroups(uid: u32) -> Vec<Check> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(mount) = gocker_cgroups::cgroup2_mount(&mountinfo) else {
        return vec![check(
            "cgroup v2",
            false,
            "no cgroup2 filesystem mounted: resource limits unavailable",
            Some("boot with systemd.unified_cgroup_hierarchy=1".into()),
        )];
    };
    let wanted = ["cpu", "cpuset", "io", "memory", "pids"];
    let available = gocker_cgroups::Hierarchy::controllers(&mount).unwrap_or_default();
    let v1 = gocker_cgroups::bound_to_v1(&mountinfo, &wanted);
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| !available.iter().any(|a| a == c))
        .collect();
    let mode = if v1.is_empty() { "unified" } else { "hybrid" };
    let mut detail = format!(
        "{mode}: cgroup2 at {}; controllers: {}",
        mount.display(),
        if available.is_empty() {
            "none".into()
        } else {
            available.join(" ")
        }
    );
    if !v1.is_empty() {
        detail.push_str(&format!(
            "; bound to cgroup v1: {} (limits on them cannot be applied)",
            v1.join(" ")
        ));
    }
    let mut out = vec![check(
        "cgroup v2 controllers",
        missing.is_empty(),
        detail,
        Some(format!(
            "missing {}: boot with systemd.unified_cgroup_hierarchy=1 (and cgroup_no_v1=all) so every controller is on cgroup v2",
            missing.join(" ")
        )),
    )];
    if uid != 0 {
        let delegated = gocker_cgroups::Hierarchy::at(&mount).parent_for_containers();
        out.push(check(
            "cgroup delegation",
            delegated.is_ok(),
            match &delegated {
                Ok(p) => format!("containers go under {}", p.display()),
                Err(e) => e.to_string(),
            },
            Some("run in a systemd user session with Delegate=yes (systemd-run --user --scope -p Delegate=yes ...)".into()),
        ));
    }
    out
}

fn seccomp() -> Check {
    let actions = read("/proc/sys/kernel/seccomp/actions_avail");
    let notify = actions
        .as_deref()
        .map(|a| a.split_whitespace().any(|x| x == "user_notif"))
        .unwrap_or(false);
    check(
        "seccomp",
        actions.is_some(),
        match &actions {
            Some(a) => format!(
                "filter actions: {a}{}",
                if notify {
                    ""
                } else {
                    " (no user notification)"
                }
            ),
            None => "seccomp filters not supported by this kernel".into(),
        },
        Some("a kernel built with CONFIG_SECCOMP_FILTER".into()),
    )
}

/// Runs `bin ARGS` and returns its first output line, or why it could not run or failed.
fn runs(bin: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let first = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    if out.status.success() {
        Ok(first(&out.stdout))
    } else {
        Err(format!(
            "{} {} failed ({}): {}",
            bin.display(),
            args.join(" "),
            out.status,
            first(&out.stderr)
        ))
    }
}

/// A user-mode driver: found, and runs (`--version`).
fn driver(name: &'static str, package: &str) -> Check {
    let (ok, detail) = match gocker_net::helper::find(name) {
        None => (false, "not installed".to_owned()),
        Some(p) => match runs(&p, &["--version"]) {
            Ok(v) => (true, format!("{} ({v})", p.display())),
            Err(e) => (false, e),
        },
    };
    check(name, ok, detail, Some(format!("apt-get install {package}")))
}

/// The network modes, each probed as `gocker run` would use it (docs/networking.md).
fn networking(uid: u32) -> Vec<Check> {
    use gocker_net::probe;
    let root = uid == 0;
    let mut out = Vec::new();
    if root {
        // The bridge's NAT: nft on PATH, and the kernel answering it (nf_tables).
        let (ok, detail) = match probe::nft() {
            Err(u) => (false, u.reason),
            Ok(p) => match runs(&p, &["list", "tables"]) {
                Ok(_) => (true, format!("{} (nf_tables answers)", p.display())),
                Err(e) => (false, e),
            },
        };
        out.push(must(check(
            "nftables (bridge NAT)",
            ok,
            detail,
            Some("apt-get install nftables (nft on PATH), or use --network none".into()),
        )));
    }
    let pasta = driver("pasta", "passt");
    let slirp = driver("slirp4netns", "slirp4netns");
    if root {
        out.push(slirp);
    } else {
        // Either will do; FAIL when neither runs.
        let neither = !pasta.ok && !slirp.ok;
        for c in [pasta, slirp] {
            out.push(if neither { must(c) } else { c });
        }
    }
    let tun = probe::tun();
    let (ok, detail) = match tun {
        Ok(()) => (
            true,
            format!(
                "a tap device can be created in a new network namespace{}",
                if root { "" } else { " of a user namespace" }
            ),
        ),
        Err(f) if f.stage == probe::TunStage::Namespaces => (
            false,
            format!(
                "cannot create namespaces to probe {}: {}",
                probe::TUN,
                std::io::Error::from_raw_os_error(f.errno)
            ),
        ),
        Err(_) => match probe::explain_tun(gocker_net::Mode::Pasta, tun) {
            Err(u) => (false, u.reason),
            Ok(()) => (true, "usable".into()),
        },
    };
    let tun_fix = match probe::explain_tun(gocker_net::Mode::Pasta, tun) {
        Err(u) => u.fix,
        Ok(()) => "see the user namespaces check".into(),
    };
    let c = check("/dev/net/tun", ok, detail, Some(tun_fix));
    // Rootless networking needs it; as root only slirp4netns and a container's own tun do.
    out.push(if root { c } else { must(c) });
    let (mode, why) = probe::default_mode(root);
    out.push(match why {
        None => check("default network", true, format!("{mode}"), None),
        Some(w) => {
            let c = check(
                "default network",
                false,
                format!(
                    "falls back to {mode}: {} cannot work here: {}",
                    w.mode, w.reason
                ),
                Some(w.fix),
            );
            // No network at all is a FAIL; another working mode a WARN.
            if mode == gocker_net::Mode::None {
                must(c)
            } else {
                c
            }
        }
    });
    out
}

fn filesystems() -> Vec<Check> {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let overlay = fs
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let (major, minor) = {
        let mut it = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u32>().ok());
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let idmap_ok = (major, minor) >= (5, 12);
    vec![
        check(
            "kernel",
            (major, minor) >= (5, 3),
            format!("{release} (clone3 needs 5.3; idmapped mounts 5.12)"),
            Some("a kernel 5.12 or newer".into()),
        ),
        check(
            "idmapped mounts",
            idmap_ok,
            if idmap_ok {
                "supported by the kernel (per filesystem: tmpfs, ext4, xfs, btrfs, overlayfs in 6.x)"
            } else {
                "not supported: root-owned rootfs files appear as nobody"
            },
            Some("a kernel 5.12 or newer".into()),
        ),
        check(
            "overlayfs",
            overlay,
            if overlay { "available" } else { "not loaded" },
            Some("modprobe overlay".into()),
        ),
    ]
}

pub fn info(a: InfoArgs) -> i32 {
    let uid = rustix::process::geteuid().as_raw();
    let mut checks = vec![user_namespaces()];
    checks.extend(subids(uid));
    checks.extend(cgroups(uid));
    checks.push(seccomp());
    checks.extend(networking(uid));
    checks.extend(filesystems());
    if a.format.is_some() {
        return info_template(a.format.as_deref(), uid, &checks);
    }
    if a.json {
        let v = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "rootless": uid != 0,
            "state_dir": gocker_runtime::StateStore::default_root(),
            "checks": checks,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return 0;
    }
    println!(
        "gocker {} ({}; state in {})",
        env!("CARGO_PKG_VERSION"),
        if uid == 0 { "rootful" } else { "rootless" },
        gocker_runtime::StateStore::default_root().display()
    );
    for c in &checks {
        println!(
            "{} {:<30} {}",
            match c.level {
                Level::Ok => "OK  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            },
            c.name,
            c.detail
        );
        if let Some(f) = &c.fix {
            println!("     {:<30} fix: {f}", "");
        }
    }
    0
}

/// `info --format`: a Go template over docker's names of what `info` knows (ServerVersion,
/// KernelVersion, OSType, Architecture, NCPU, Containers, ContainersRunning, ContainersStopped)
/// and gocker's own (Rootless, StateDir, Checks).
fn info_template(format: Option<&str>, uid: u32, checks: &[Check]) -> i32 {
    let format = match crate::format::Format::parse(format) {
        Ok(f) => f,
        Err(e) => return crate::failure::report(e.into()),
    };
    let uname = rustix::system::uname();
    let root = gocker_runtime::StateStore::default_root();
    let list = gocker_runtime::StateStore::open(&root)
        .and_then(|s| s.list())
        .unwrap_or_default();
    let running = list.iter().filter(|s| crate::manage::running(s)).count();
    let v = serde_json::json!({
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "KernelVersion": uname.release().to_string_lossy(),
        "OSType": "linux",
        "Architecture": uname.machine().to_string_lossy(),
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "Containers": list.len(),
        "ContainersRunning": running,
        "ContainersStopped": list.len() - running,
        "Rootless": uid != 0,
        "StateDir": root,
        "Checks": checks,
    });
    match format.render(&[v], &[]) {
        Ok(text) => {
            crate::failure::wrote(std::io::Write::write_all(
                &mut std::io::stdout(),
                text.unwrap_or_default().as_bytes(),
            ));
            0
        }
        Err(e) => crate::failure::report(e.into()),
    }
}
