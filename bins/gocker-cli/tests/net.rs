//! Networking (issue 6), against the real kernel: bridge + NAT + published ports as root,
//! slirp4netns and pasta as unprivileged users, NET_ADMIN inside the container's own namespace,
//! and nothing left behind (links, nft rules, leases, helper processes) after many runs and after
//! SIGKILL. Traffic only goes to loopback, the bridge's host address and container addresses.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// A port per test, user and test process (the user phases run one after another, tests of a
/// phase in parallel; the process id spreads concurrent suites, e.g. another checkout's, apart).
fn port(base: u16) -> u16 {
    base + ((uid() + std::process::id()) % 50) as u16
}

/// gocker's network state: beside the state store.
fn net_dir() -> PathBuf {
    let mut s = state_dir().into_os_string();
    s.push("-net");
    s.into()
}

fn have(tool: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(tool).exists())
}

/// GET / from 127.0.0.1:port, retrying while the server starts.
fn http_get(port: u16, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < end {
        let attempt = || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_secs(1),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        };
        match attempt() {
            Ok(b) if b.contains("200 OK") => return b,
            Ok(b) => last = b,
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no HTTP answer on 127.0.0.1:{port}: {last}");
}

/// A detached busybox httpd serving `body`, published on 127.0.0.1:host_port.
fn httpd(name: &str, network: &str, host_port: u16, body: &str, extra: &[&str]) -> String {
    let r = rootfs();
    let publish = format!("127.0.0.1:{host_port}:80");
    let script = format!("echo {body} > /www/index.html && exec httpd -f -p 80 -h /www");
    let mut args = vec![
        "run",
        "-d",
        "--rm",
        "--name",
        name,
        "--network",
        network,
        "-p",
        &publish,
        "--tmpfs",
        "/www",
        "--rootfs",
        &r,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["/bin/sh", "-c", &script]);
    ok(&g(&args)).trim().to_owned()
}

fn stop(name: &str) {
    let _ = g(&["stop", "-t", "1", name]);
    let _ = g(&["rm", "-f", name]);
}

/// What a container identified by `id` (full or the first 12 characters) may have left behind.
fn leftovers(id: &str) -> Vec<String> {
    let short = &id[..12];
    let mut found = Vec::new();
    if is_root() {
        let links = text(
            &Command::new("ip")
                .args(["-o", "link", "show"])
                .output()
                .unwrap()
                .stdout,
        );
        if links.contains(&format!("gk{short}")) {
            found.push(format!("veth gk{short}"));
        }
        let rules = text(
            &Command::new("nft")
                .args(["list", "ruleset"])
                .output()
                .unwrap()
                .stdout,
        );
        if rules.contains(&format!("gocker:{short}")) {
            found.push(format!("nft rule of {short}"));
        }
    }
    let leases = net_dir().join("gocker0/leases");
    for e in std::fs::read_dir(&leases).into_iter().flatten().flatten() {
        if std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .contains(short)
        {
            found.push(format!("lease {}", e.path().display()));
        }
    }
    if std::fs::read_dir(net_dir().join("helpers"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(short))
    {
        found.push("helper record".into());
    }
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = text(&std::fs::read(p.path().join("cmdline")).unwrap_or_default());
        if (cmd.starts_with("slirp4netns")
            || cmd.contains("/slirp4netns\0")
            || cmd.contains("pasta"))
            && cmd.contains(short)
        {
            found.push(format!(
                "helper process {}: {}",
                p.file_name().to_string_lossy(),
                cmd.replace('\0', " ")
            ));
        }
    }
    found
}

/// Waits until `id` left nothing behind (running `gocker ps`, which collects stale state).
#[track_caller]
fn assert_clean(id: &str) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let _ = g(&["ps", "-a"]);
        let l = leftovers(id);
        if l.is_empty() {
            return;
        }
        assert!(Instant::now() < end, "leftovers of {id}: {l:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn published_port_answers(network: &str, base: u16) {
    let name = unique(&format!("web-{network}"));
    let p = port(base);
    let id = httpd(&name, network, p, &format!("hello-from-{network}"), &[]);
    let body = http_get(p, Duration::from_secs(10));
    stop(&name);
    assert!(body.contains(&format!("hello-from-{network}")), "{body}");
    assert_clean(&id);
    // The host port is free again.
    TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("host port released");
}

#[test]
fn bridge_published_port_answers_from_host() {
    if !is_root() {
        return;
    }
    published_port_answers("bridge", 18080);
}

#[test]
fn slirp4netns_published_port_answers_from_host() {
    if is_root() || !have("slirp4netns") {
        return;
    }
    published_port_answers("slirp4netns", 18200);
}

#[test]
fn pasta_published_port_answers_from_host() {
    if is_root() || !have("pasta") {
        return;
    }
    published_port_answers("pasta", 18300);
}

#[test]
fn bridge_container_reaches_the_host_side() {
    if !is_root() {
        return;
    }
    // The bridge exists once any container used it; make sure with a first run.
    ok(&g(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "--rootfs",
        &rootfs(),
        "/bin/true",
    ]));
    let l =
        TcpListener::bind((Ipv4Addr::new(10, 87, 0, 1), 0)).expect("listen on the bridge address");
    let p = l.local_addr().unwrap().port();
    l.set_nonblocking(false).unwrap();
    let acceptor = std::thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        let mut b = String::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read_to_string(&mut b);
        (b, peer)
    });
    let out = g(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "--rootfs",
        &rootfs(),
        "/bin/sh",
        "-c",
        &format!("echo hello-host | nc -w 2 10.87.0.1 {p}"),
    ]);
    let (got, peer) = acceptor.join().unwrap();
    ok(&out);
    assert_eq!(got.trim(), "hello-host");
    let ip = match peer.ip() {
        std::net::IpAddr::V4(v) => v,
        other => panic!("{other}"),
    };
    assert_eq!(
        &ip.octets()[..2],
        &[10, 87],
        "the container's own bridge address: {ip}"
    );
}

/// Packets counted by the container's DNAT rules in `chain`.
fn dnat_packets(id: &str, chain: &str) -> u64 {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "ip", "gocker"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("rule"))
        .filter(|r| {
            r["chain"] == chain
                && r["comment"]
                    .as_str()
                    .map(|c| c.contains(id))
                    .unwrap_or(false)
        })
        .flat_map(|r| r["expr"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .sum()
}

#[test]
fn bridge_publishes_on_host_addresses_through_dnat() {
    if !is_root() {
        return;
    }
    // Published on every address: a connection to the bridge's host address (a local, non-loopback
    // address) is rewritten by the output chain's DNAT rule (the userland proxy only sees loopback).
    let name = unique("dnat");
    let r = rootfs();
    let p = port(18800);
    let publish = format!("{p}:80");
    let id = ok(&g(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &name,
        "-p",
        &publish,
        "--tmpfs",
        "/www",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo via-dnat > /www/index.html && exec httpd -f -p 80 -h /www",
    ]))
    .trim()
    .to_owned();
    let before = dnat_packets(&id, "output");
    let end = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let attempt = || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::new(10, 87, 0, 1), p)),
                Duration::from_secs(1),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut b = String::new();
            s.read_to_string(&mut b)?;
            Ok(b)
        };
        match attempt() {
            Ok(b) if b.contains("200 OK") => break b,
            _ if Instant::now() > end => panic!("no answer on 10.87.0.1:{p}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let after = dnat_packets(&id, "output");
    stop(&name);
    assert!(body.contains("via-dnat"), "{body}");
    assert!(
        after > before,
        "the output chain's DNAT rule counted the connection ({before} -> {after})"
    );
    assert_clean(&id);
}

fn inspect_ip(name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", name]))).unwrap();
    v[0]["ip"]
        .as_str()
        .unwrap_or_else(|| panic!("no ip in inspect: {v}"))
        .to_owned()
}

fn fetch_from_container(ip: &str, extra: &[&str]) -> Output {
    let r = rootfs();
    // busybox-static's wget crashes in its static resolver; nc speaks HTTP/1.0 just as well.
    let script = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80 | grep -q 200 && printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80");
    let mut args = vec!["run", "--rm", "--network", "bridge", "--rootfs", &r];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["/bin/sh", "-c", &script]);
    g(&args)
}

#[test]
fn containers_reach_each_other_unless_isolated() {
    if !is_root() {
        return;
    }
    let open = unique("peer-open");
    let id = httpd(&open, "bridge", port(18400), "peer-says-hi", &[]);
    let ip = inspect_ip(&open);
    let o = fetch_from_container(&ip, &[]);
    stop(&open);
    assert!(ok(&o).contains("peer-says-hi"));
    assert_clean(&id);

    let closed = unique("peer-closed");
    let id = httpd(
        &closed,
        "bridge",
        port(18450),
        "should-not-see",
        &["--icc=false"],
    );
    let ip = inspect_ip(&closed);
    let o = fetch_from_container(&ip, &["--icc=false"]);
    // The host side of the bridge still reaches an isolated container.
    let from_host = http_get(port(18450), Duration::from_secs(5));
    stop(&closed);
    assert_ne!(
        o.status.code(),
        Some(0),
        "isolated containers reached each other: {}",
        text(&o.stdout)
    );
    assert!(!text(&o.stdout).contains("should-not-see"));
    assert!(from_host.contains("should-not-see"));
    assert_clean(&id);
}

/// Whether this kernel can create `kind` links at all (probed in a throwaway namespace).
fn kernel_supports(kind: &str) -> bool {
    let script = format!("ip link add probe0 type {kind}");
    let args: Vec<&str> = if is_root() {
        vec!["-n", "sh", "-c", &script]
    } else {
        vec!["-rn", "sh", "-c", &script]
    };
    Command::new("unshare")
        .args(&args)
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn net_admin_works_in_the_container_namespace_only() {
    let r = rootfs();
    let net = if is_root() { "bridge" } else { "none" };
    let dummy = kernel_supports("dummy");
    // busybox ip has no `tuntap`: its tunctl makes the tap device through /dev/net/tun (TUNSETIFF).
    // This kernel may lack the dummy driver (then the probe says so and only veth + tap are made).
    let script = format!(
        "set -e; ip link add v0 type veth peer name v1; tunctl -t tap0 >/dev/null; {} ip -o link show",
        if dummy { "ip link add dummy0 type dummy;" } else { "" }
    );
    let out = ok(&g(&[
        "run",
        "--rm",
        "--network",
        net,
        "--cap-add",
        "NET_ADMIN",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        &script,
    ]));
    for l in ["v0@", "tap0:"]
        .iter()
        .chain(if dummy { ["dummy0:"].iter() } else { [].iter() })
    {
        assert!(out.contains(&format!(": {l}")), "{l} inside: {out}");
    }
    let host = text(
        &Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap()
            .stdout,
    );
    for l in [": v0@", ": tap0:", ": dummy0:"] {
        assert!(!host.contains(l), "{l} appeared on the host: {host}");
    }
    // Without NET_ADMIN the same is refused.
    let denied = g(&[
        "run",
        "--rm",
        "--network",
        net,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "ip link add v0 type veth peer name v1",
    ]);
    assert_ne!(denied.status.code(), Some(0));
    assert!(
        text(&denied.stderr).contains("not permitted"),
        "{}",
        text(&denied.stderr)
    );
}

#[test]
fn resolv_conf_and_hosts_are_the_containers_own() {
    let r = rootfs();
    let out = ok(&g(&[
        "run", "--rm", "--network", "none", "--hostname", "box", "--dns", "192.0.2.53", "--add-host", "db.local:192.0.2.7",
        "--rootfs", &r, "/bin/sh", "-c", "cat /etc/resolv.conf /etc/hosts; echo '192.0.2.8 extra' >> /etc/hosts && grep -c extra /etc/hosts",
    ]));
    assert!(out.contains("nameserver 192.0.2.53\n"), "{out}");
    assert!(
        out.contains("127.0.0.1\tbox\n") && out.contains("192.0.2.7\tdb.local\n"),
        "{out}"
    );
    assert!(out.trim_end().ends_with('1'), "editable inside: {out}");
    assert!(
        !std::fs::read_to_string("/etc/hosts")
            .unwrap()
            .contains("192.0.2.8"),
        "the host's file is untouched"
    );
}

#[test]
fn host_network_shares_the_hosts_interfaces() {
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let out = ok(&g(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--rootfs",
        &rootfs(),
        "/bin/sh",
        "-c",
        "ls /sys/class/net",
    ]));
    let mut inside: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    host.retain(|h| !h.starts_with("gk"));
    inside.retain(|h| !h.starts_with("gk"));
    host.sort();
    inside.sort();
    assert_eq!(inside, host);
}

#[test]
fn flag_errors_name_flag_and_value() {
    let r = rootfs();
    for (args, needle) in [
        (vec!["-p", "8000-8001:80"], "--publish \"8000-8001:80\""),
        (vec!["-p", "1:2/sctp"], "--publish \"1:2/sctp\""),
        (vec!["--network", "wifi"], "--network \"wifi\""),
        (vec!["--add-host", "nocolon"], "--add-host \"nocolon\""),
        (vec!["--dns", "x.y"], "--dns \"x.y\""),
        (vec!["--cap-add", "NOPE"], "--cap-add \"NOPE\""),
        (vec!["--network", "none", "-p", "8080:80"], "--network none"),
    ] {
        let mut a = vec!["run", "--rm", "--rootfs", &r];
        a.extend(args);
        a.push("/bin/true");
        let o = g(&a);
        assert_eq!(o.status.code(), Some(125), "{a:?}");
        assert!(
            text(&o.stderr).contains(needle),
            "{a:?}: {}",
            text(&o.stderr)
        );
    }
    let (mode, why) = if is_root() {
        ("pasta", "rootless driver")
    } else {
        ("bridge", "needs root")
    };
    let o = g(&[
        "run",
        "--rm",
        "--network",
        mode,
        "--rootfs",
        &r,
        "/bin/true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o.stderr).contains(why), "{}", text(&o.stderr));
}

/// The modes this user can run with a network namespace and a way out.
fn modes() -> Vec<&'static str> {
    if is_root() {
        // slirp4netns works for root too; pasta is rootless only.
        ["bridge", "slirp4netns"]
            .into_iter()
            .filter(|m| *m == "bridge" || have(m))
            .collect()
    } else {
        ["slirp4netns", "pasta"]
            .into_iter()
            .filter(|m| have(if *m == "pasta" { "pasta" } else { m }))
            .collect()
    }
}

#[test]
fn hundred_runs_leave_nothing_behind() {
    let r = rootfs();
    for (i, mode) in modes().into_iter().enumerate() {
        let publish = format!("127.0.0.1:{}:80", port(18500 + 50 * i as u16));
        let start = Instant::now();
        let mut ids = Vec::new();
        for _ in 0..100 {
            let o = ok(&g(&[
                "run",
                "--rm",
                "--network",
                mode,
                "-p",
                &publish,
                "--rootfs",
                &r,
                "/bin/hostname",
            ]));
            ids.push(o.trim().to_owned());
        }
        let took = start.elapsed();
        for id in &ids {
            assert_eq!(id.len(), 12, "hostname is the short id: {id}");
            // The kernel deletes a veth pair with its namespace asynchronously: allow it a moment.
            assert_clean(id);
        }
        eprintln!("{mode}: 100 runs in {took:?}");
    }
}

/// Kills a `gocker run` child if the test fails before it does.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn sigkilled_runs_are_collected() {
    let r = rootfs();
    for (i, mode) in modes().into_iter().enumerate() {
        let publish = format!("127.0.0.1:{}:80", port(18600 + 50 * i as u16));
        let child = Command::new(bin())
            .args([
                "run",
                "--rm",
                "--network",
                mode,
                "-p",
                &publish,
                "--rootfs",
                &r,
                "/bin/sh",
                "-c",
                "hostname; exec sleep 60",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut guard = KillOnDrop(Some(child));
        let child = guard.0.as_mut().unwrap();
        let mut id = [0u8; 13];
        if let Err(e) = child.stdout.as_mut().unwrap().read_exact(&mut id) {
            let mut err = String::new();
            let _ = child.kill();
            let _ = child.stderr.as_mut().unwrap().read_to_string(&mut err);
            panic!("{mode}: no hostname from the container ({e}): {err}");
        }
        let id = String::from_utf8_lossy(&id[..12]).into_owned();
        if mode == "bridge" {
            let links = text(
                &Command::new("ip")
                    .args(["-o", "link"])
                    .output()
                    .unwrap()
                    .stdout,
            );
            assert!(
                links.contains(&format!("gk{id}")),
                "the veth exists while it runs"
            );
        } else {
            assert!(
                !leftovers(&id).is_empty(),
                "{mode}: the helper runs while the container runs"
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
        guard.0 = None;
        assert_clean(&id);
    }
}

#[test]
fn a_busy_host_port_fails_cleanly() {
    let r = rootfs();
    for (i, mode) in modes().into_iter().enumerate() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, port(18700 + 50 * i as u16))).unwrap();
        let p = busy.local_addr().unwrap().port();
        let publish = format!("127.0.0.1:{p}:80");
        let name = unique("busy");
        let o = g(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--network",
            mode,
            "-p",
            &publish,
            "--rootfs",
            &r,
            "/bin/true",
        ]);
        assert_eq!(o.status.code(), Some(125), "{mode}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(
            err.contains(&p.to_string()),
            "{mode}: the error names the port: {err}"
        );
        // Everything made before the failure is gone: the name is free again, nothing is left.
        ok(&g(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--network",
            mode,
            "--rootfs",
            &r,
            "/bin/true",
        ]));
        drop(busy);
    }
}

#[test]
fn system_prune_collects_what_a_sigkilled_run_left() {
    // A private state directory (XDG_RUNTIME_DIR), so that pruning cannot touch other tests'
    // containers; rootless only (root's state directory is fixed).
    if is_root() {
        return;
    }
    let Some(mode) = modes().into_iter().next() else {
        return;
    };
    let xdg = std::env::temp_dir().join(unique("prune-xdg"));
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gk = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .env("XDG_RUNTIME_DIR", &xdg)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let r = rootfs();
    let publish = format!("127.0.0.1:{}:80", port(18850));
    let child = Command::new(bin())
        .args([
            "run",
            "--name",
            "victim",
            "--network",
            mode,
            "-p",
            &publish,
            "--rootfs",
            &r,
            "/bin/sh",
            "-c",
            "hostname; exec sleep 60",
        ])
        .env("XDG_RUNTIME_DIR", &xdg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));
    let child = guard.0.as_mut().unwrap();
    let mut id = [0u8; 13];
    child.stdout.as_mut().unwrap().read_exact(&mut id).unwrap();
    let id = String::from_utf8_lossy(&id[..12]).into_owned();
    let record = xdg.join("gocker-net/helpers");
    assert!(
        std::fs::read_dir(&record)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&id)),
        "helper recorded"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    guard.0 = None;
    let out = gk(&["system", "prune", "-f"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // docker's output: the ids of the containers removed, under Deleted Containers.
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with("Deleted Containers:\n")
            && printed.lines().any(|l| l.starts_with(&id))
            && printed.contains("Total reclaimed space: "),
        "{printed}"
    );
    assert!(
        std::fs::read_dir(&record).map(|d| d.count()).unwrap_or(0) == 0,
        "helper record collected"
    );
    let end = Instant::now() + Duration::from_secs(5);
    while !leftovers(&id).is_empty() {
        assert!(Instant::now() < end, "{:?}", leftovers(&id));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!ok(&gk(&["ps", "-a"])).contains("victim"));
    let _ = std::fs::remove_dir_all(&xdg);
}

/// `-p 127.0.0.1::80` and `-P` (with `--expose`): the kernel picks the host ports, `gocker port`
/// shows them, and the chosen port really answers.
#[test]
fn kernel_chosen_host_ports_answer_and_port_shows_them() {
    let network = if is_root() {
        "bridge"
    } else if have("pasta") {
        "pasta"
    } else {
        return;
    };
    let name = unique("web-random");
    let r = rootfs();
    let script = "echo random-port > /www/index.html && exec httpd -f -p 80 -h /www";
    ok(&g(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &name,
        "--network",
        network,
        "-p",
        "127.0.0.1::80",
        "--expose",
        "81",
        "-P",
        "--tmpfs",
        "/www",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        script,
    ]));
    let out = ok(&g(&["port", &name]));
    let host_port = |private: &str| -> u16 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{private} -> ")))
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("no {private} in `gocker port`: {out}"))
    };
    let p80 = host_port("80/tcp");
    let p81 = host_port("81/tcp");
    assert!(p80 >= 1024 && p81 >= 1024 && p80 != p81, "{out}");
    assert!(out.contains(&format!("80/tcp -> 127.0.0.1:{p80}")), "{out}");
    // ps's PORTS column and inspect's NetworkSettings.Ports say the same.
    let ps = ok(&g(&["ps"]));
    let row = ps.lines().find(|l| l.contains(&name)).unwrap_or_default();
    assert!(
        row.contains(&format!("127.0.0.1:{p80}->80/tcp"))
            && row.contains(&format!("0.0.0.0:{p81}->81/tcp")),
        "{ps}"
    );
    let inspect: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &name]))).unwrap();
    let ports = &inspect[0]["NetworkSettings"]["Ports"];
    assert_eq!(ports["80/tcp"][0]["HostIp"], "127.0.0.1", "{ports}");
    assert_eq!(ports["80/tcp"][0]["HostPort"], p80.to_string(), "{ports}");
    assert_eq!(ports["81/tcp"][0]["HostPort"], p81.to_string(), "{ports}");
    let body = http_get(p80, Duration::from_secs(10));
    stop(&name);
    assert!(body.contains("random-port"), "{body}");
}
