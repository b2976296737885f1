//! A default network that works anywhere (issue 16): when the default mode cannot work on this
//! host it falls back with one warning line; a mode asked for by name fails with 125 naming the
//! missing piece and the fix; `gocker info` reports the probes.
//!
//! Runs as root and as the unprivileged users (GOCKER_TEST_MODE). The tests that change
//! `/dev/net/tun`'s mode run as root and start gocker as the test user gocker-sub (setpriv);
//! they hold the tun lock exclusively (common::TunMode), the others that need 0666 shared.

mod common;
use common::*;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A PATH with the usual tools but without nft (Debian installs it in /usr/sbin only).
const PATH_WITHOUT_NFT: &str = "/usr/local/bin:/usr/bin:/bin";

fn assert_no_nft_on(path: &str) {
    for d in path.split(':') {
        assert!(
            !std::path::Path::new(d).join("nft").exists(),
            "{d}/nft exists: this test needs a PATH without nft"
        );
    }
}

/// The lines of stderr, without the notice about the rootfs (none is printed with --rootfs).
fn lines(o: &std::process::Output) -> Vec<String> {
    stderr(o).lines().map(str::to_owned).collect()
}

/// The container's network interfaces, from inside (/proc/net/dev).
const IFACES: &str = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '";

#[test]
fn root_default_without_nft_falls_back_with_one_warning() {
    if !is_root() {
        return;
    }
    assert_no_nft_on(PATH_WITHOUT_NFT);
    let r = rootfs();
    let o = gocker(&["run", "--rm", "--rootfs", &r, "/bin/true"])
        .env("PATH", PATH_WITHOUT_NFT)
        .env_remove("GOCKER_NETWORK")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let l = lines(&o);
    assert_eq!(l.len(), 1, "exactly one line on stderr: {l:?}");
    let w = &l[0];
    assert!(
        w.contains("warning")
            && w.contains("(bridge)")
            && w.contains("nft")
            && w.contains("nftables")
            && w.contains("--network"),
        "{w}"
    );
    // What it fell back to really is the container's network: slirp4netns's tap0 (or loopback
    // only, without slirp4netns), never a veth on the bridge.
    let o = gocker(&["run", "--rm", "--rootfs", &r, "/bin/sh", "-c", IFACES])
        .env("PATH", PATH_WITHOUT_NFT)
        .env_remove("GOCKER_NETWORK")
        .output()
        .unwrap();
    let ifaces = ok(&o);
    let fell_to = if w.contains("--network slirp4netns") {
        "lo tap0 "
    } else {
        assert!(w.contains("--network none"), "{w}");
        "lo "
    };
    assert_eq!(ifaces, fell_to, "{w}");
    // `gocker info` says the same: nftables FAIL, the default a fallback.
    let o = gocker(&["info"])
        .env("PATH", PATH_WITHOUT_NFT)
        .output()
        .unwrap();
    let out = ok(&o);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(name) && !l.trim_start().starts_with("fix:"))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_owned()
    };
    assert!(line("nftables").starts_with("FAIL"), "{out}");
    let d = line("default network");
    assert!(
        d.contains("falls back to") && (d.starts_with("WARN") || d.starts_with("FAIL")),
        "{out}"
    );
}

#[test]
fn root_bridge_by_name_without_nft_is_125_naming_nftables() {
    if !is_root() {
        return;
    }
    assert_no_nft_on(PATH_WITHOUT_NFT);
    let r = rootfs();
    let name = unique("nonft");
    for (args, env) in [
        (vec!["--network", "bridge"], None),
        (vec![], Some("bridge")),
    ] {
        let mut a = vec!["run", "--rm", "--name", &name, "--rootfs", &r];
        a.extend(args.iter().copied());
        a.push("/bin/true");
        let mut c = gocker(&a);
        c.env("PATH", PATH_WITHOUT_NFT);
        match env {
            Some(v) => c.env("GOCKER_NETWORK", v),
            None => c.env_remove("GOCKER_NETWORK"),
        };
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("--network bridge")
                && e.contains("nft")
                && e.contains("install the Debian package `nftables`"),
            "{e}"
        );
        assert!(
            !e.contains("warning"),
            "no fallback for a mode asked by name: {e}"
        );
        // Nothing was created: no container record.
        assert!(
            !state_dir().join("names").join(&name).exists(),
            "a record of {name} was left"
        );
    }
}

/// The default as the user gocker-sub with /dev/net/tun at 0600 (as on some VM images).
#[test]
fn user_with_tun_0600_default_falls_back_and_named_modes_fail() {
    if !is_root() {
        return;
    }
    let user = TestUser::get("gocker-sub");
    let r = rootfs();
    let tun = TunMode::set(0o600);
    let o = user
        .gocker(&["run", "--rm", "--rootfs", &r, "/bin/true"], &[])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let l = lines(&o);
    assert_eq!(l.len(), 1, "exactly one line on stderr: {l:?}");
    let w = &l[0];
    assert!(
        w.contains("warning")
            && w.contains("/dev/net/tun")
            && w.contains("0600")
            && w.contains("chmod 0666 /dev/net/tun")
            && w.contains("--network none"),
        "{w}"
    );
    // Really without a network: loopback only.
    let o = user
        .gocker(
            &["run", "--rm", "--rootfs", &r, "/bin/sh", "-c", IFACES],
            &[],
        )
        .output()
        .unwrap();
    assert_eq!(ok(&o), "lo ");

    for mode in ["pasta", "slirp4netns"] {
        let o = user
            .gocker(
                &[
                    "run",
                    "--rm",
                    "--network",
                    mode,
                    "--rootfs",
                    &r,
                    "/bin/true",
                ],
                &[],
            )
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(125), "{mode}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("--network {mode}"))
                && e.contains("/dev/net/tun")
                && e.contains("mode 0600")
                && e.contains("chmod 0666 /dev/net/tun"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    // `gocker info` runs the same probe and says FAIL.
    let o = user.gocker(&["info"], &[]).output().unwrap();
    let out = ok(&o);
    let tun_line = out
        .lines()
        .find(|l| l.contains("/dev/net/tun") && !l.contains("fix:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        tun_line.starts_with("FAIL") && tun_line.contains("0600"),
        "{out}"
    );
    let default_line = out
        .lines()
        .find(|l| l.contains("default network"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        default_line.starts_with("FAIL") && default_line.contains("falls back to none"),
        "{out}"
    );
    drop(tun);

    // With the distribution's mode the probe passes again and the default is pasta, silently.
    let _tun = TunMode::set(0o666);
    let o = user
        .gocker(&["run", "--rm", "--rootfs", &r, "/bin/true"], &[])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

/// Where every mode works, the default is silent and really has a network.
#[test]
fn a_working_default_is_silent() {
    let _tun = tun_shared();
    if std::env::var_os("GOCKER_NETWORK").is_some() {
        return;
    }
    let r = rootfs();
    let o = gocker(&["run", "--rm", "--rootfs", &r, "/bin/sh", "-c", IFACES])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .output()
        .unwrap();
    let ifaces = ok(&o);
    assert_eq!(stderr(&o), "", "no warning when the default works");
    assert_ne!(ifaces, "lo ", "the default has a network: {ifaces}");
    let info = ok(&g(&["info"]));
    let line = info
        .lines()
        .find(|l| l.contains("default network"))
        .unwrap_or_else(|| panic!("{info}"));
    let expected = if is_root() { "bridge" } else { "pasta" };
    assert!(
        line.starts_with("OK") && line.trim_end().ends_with(expected),
        "{line}"
    );
}
