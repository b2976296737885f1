//! User-defined networks (issue 16): `gocker network create|ls|inspect|rm|prune`, `run --network
//! NAME`, `--network-alias`, name resolution through the embedded resolver, isolation between
//! networks, and nothing left behind (bridges, nft rules, records). As root; rootless, the
//! refusal and its message. Traffic only between the namespaces of the containers these tests
//! start, and to the bridges' own addresses.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Output;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skips (with the reason printed) outside root mode: user networks are refused rootless, which
/// [`rootless_create_and_run_are_refused_naming_the_alternative`] checks.
macro_rules! root_only {
    () => {
        if !is_root() {
            eprintln!("skipped: user-defined networks are root-only (the rootless refusal is tested in rootless_create_and_run_are_refused_naming_the_alternative)");
            return;
        }
    };
}

fn net_dir() -> PathBuf {
    let mut s = state_dir().into_os_string();
    s.push("-net");
    s.into()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// The host's links (`ip -o link`).
fn links() -> String {
    text(
        &std::process::Command::new("ip")
            .args(["-o", "link"])
            .output()
            .expect("ip")
            .stdout,
    )
}

/// The IPv4 addresses of a host interface (`ip -o -4 addr show dev NAME`).
fn addrs(dev: &str) -> String {
    text(
        &std::process::Command::new("ip")
            .args(["-o", "-4", "addr", "show", "dev", dev])
            .output()
            .expect("ip")
            .stdout,
    )
}

fn ruleset() -> String {
    text(
        &std::process::Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .expect("nft")
            .stdout,
    )
}

/// Nothing of the network is left: no bridge, no nft rule naming it, no record, no leases.
#[track_caller]
fn assert_gone(bridge: &str, id: &str) {
    assert!(
        !links().contains(bridge),
        "bridge {bridge} left: {}",
        links()
    );
    assert!(
        !ruleset().contains(bridge),
        "nft rules name {bridge}: {}",
        ruleset()
    );
    assert!(
        !net_dir().join("networks").join(id).exists(),
        "record of {id} left"
    );
    assert!(
        !net_dir().join(bridge).exists(),
        "lease dir of {bridge} left"
    );
}

/// The JSON of `network inspect NAME` (one element).
fn inspect_container(name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", name]))).expect("json");
    v[0].clone()
}

fn inspect(name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&g(&["network", "inspect", name]))).unwrap();
    v[0].clone()
}

#[test]
fn create_ls_inspect_rm_as_docker() {
    root_only!();
    let name = unique("net-cli");
    let n = NetworkGuard::create(
        &name,
        &[
            "--driver",
            "bridge",
            "--subnet",
            "10.93.7.0/24",
            "--gateway",
            "10.93.7.254",
            "--label",
            "team=blue",
            "--label",
            "solo",
        ],
    );
    assert_eq!(n.id.len(), 64, "{}", n.id);
    // The bridge exists, is up, and carries the gateway address.
    assert!(
        addrs(&n.bridge()).contains("inet 10.93.7.254/24"),
        "{}",
        addrs(&n.bridge())
    );
    let v = inspect(&name);
    assert_eq!(v["Name"], name.as_str());
    assert_eq!(v["Id"], n.id.as_str());
    assert_eq!(v["Driver"], "bridge");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Internal"], false);
    assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.93.7.0/24");
    assert_eq!(v["IPAM"]["Config"][0]["Gateway"], "10.93.7.254");
    assert_eq!(v["Labels"]["team"], "blue");
    assert_eq!(v["Labels"]["solo"], "");
    assert_eq!(
        v["Options"]["com.docker.network.bridge.name"],
        n.bridge().as_str()
    );
    assert!(v["Created"].as_str().unwrap().ends_with('Z'), "{v}");
    // By id prefix too.
    assert_eq!(inspect(&n.id[..12])["Name"], name.as_str());

    // ls: docker's columns, the predefined networks, -q, --filter.
    let ls = ok(&g(&["network", "ls"]));
    let header = ls.lines().next().unwrap();
    for col in ["NETWORK ID", "NAME", "DRIVER", "SCOPE"] {
        assert!(header.contains(col), "{ls}");
    }
    let row = ls.lines().find(|l| l.contains(&name)).expect(&ls);
    assert!(
        row.starts_with(&n.id[..12]) && row.contains("bridge") && row.contains("local"),
        "{row}"
    );
    for builtin in ["bridge", "host", "none"] {
        assert!(
            ls.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(builtin)),
            "{ls}"
        );
    }
    let q = ok(&g(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("name={name}"),
    ]));
    assert_eq!(q.trim(), &n.id[..12]);
    let q = ok(&g(&[
        "network",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        "label=team=blue",
    ]));
    assert!(q.lines().any(|l| l == n.id), "{q}");
    let q = ok(&g(&["network", "ls", "-q", "--filter", "label=team=red"]));
    assert!(!q.contains(&n.id[..12]), "{q}");
    let q = ok(&g(&["network", "ls", "--filter", "type=builtin"]));
    assert!(!q.contains(&name) && q.contains("host"), "{q}");
    let bad = g(&["network", "ls", "--filter", "colour=red"]);
    assert_eq!(code(&bad), Some(125));
    assert!(
        stderr(&bad).contains("--filter \"colour=red\""),
        "{}",
        stderr(&bad)
    );

    // Hostile and wrong input: each named, exit 125, nothing made.
    for (args, needle) in [
        (
            vec!["--subnet", "10.93.7.128/25"],
            "overlaps 10.93.7.0/24 of network",
        ),
        (vec!["--subnet", "10.93.8.0/33"], "--subnet"),
        (vec!["--subnet", "10.93.8.1/24"], "not a network address"),
        (
            vec!["--subnet", "10.93.8.0/24", "--gateway", "10.93.9.1"],
            "--gateway",
        ),
        (vec!["--gateway", "10.93.8.1"], "--gateway needs --subnet"),
        (vec!["--driver", "overlay"], "only the bridge driver"),
        (vec!["--ipv6"], "IPv6"),
        (vec!["-o", "foo=bar"], "--opt"),
    ] {
        let other = unique("net-bad");
        let mut a = vec!["network", "create"];
        a.extend(args.iter().copied());
        a.push(&other);
        let o = g(&a);
        assert_eq!(code(&o), Some(125), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        let overlap = args.contains(&"10.93.7.128/25");
        if overlap {
            // Both networks are named.
            assert!(
                stderr(&o).contains(&other) && stderr(&o).contains(&name),
                "{}",
                stderr(&o)
            );
        }
    }
    for bad in ["..", "a/b", "-x", "bridge", "host", "none"] {
        let o = g(&["network", "create", bad]);
        assert_ne!(code(&o), Some(0), "{bad}");
        assert!(
            stderr(&o).contains(&format!("{bad:?}")) || stderr(&o).contains(bad),
            "{bad}: {}",
            stderr(&o)
        );
    }
    // None of the refused networks exists (nor a record of it).
    let ls = ok(&g(&["network", "ls"]));
    assert!(!ls.contains("net-bad"), "{ls}");
    let o = g(&["network", "create", &name]);
    assert_eq!(code(&o), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = g(&["network", "rm", "bridge"]);
    assert_eq!(code(&o), Some(1));
    assert!(stderr(&o).contains("pre-defined"), "{}", stderr(&o));
    let o = g(&["network", "rm", "no-such-net-x"]);
    assert_eq!(code(&o), Some(1));
    assert!(stderr(&o).contains("no-such-net-x"), "{}", stderr(&o));
    ok(&g(&["network", "rm", "-f", "no-such-net-x"]));

    // rm: the name printed, everything gone.
    assert_eq!(ok(&g(&["network", "rm", &name])).trim(), name);
    assert_gone(&n.bridge(), &n.id);
    let o = g(&["network", "inspect", &name]);
    assert_eq!(code(&o), Some(1));
    assert_eq!(stdout(&o).trim(), "[]");
}

#[test]
fn concurrent_creates_of_one_name_give_one_network() {
    root_only!();
    let name = unique("net-race");
    let outs: Vec<Output> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| g(&["network", "create", &name])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        outs.iter().map(stderr).collect::<Vec<_>>()
    );
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(stderr(o).contains("already exists"), "{}", stderr(o));
    }
    let id = stdout(won[0]).trim().to_owned();
    let n = NetworkGuard::adopt(&name, &id);
    let q = ok(&g(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("name={name}"),
    ]));
    assert_eq!(q.lines().count(), 1, "{q}");
    assert_eq!(links().matches(&n.bridge()).count(), 1);
    ok(&g(&["network", "rm", &name]));
    assert_gone(&n.bridge(), &n.id);
}

/// `wget` of http://HOST:8080/, retried while the server starts (`tries` times, 0.2 s apart).
/// (No `wget -T`: the test rootfs's busybox 1.35 crashes with it; `nc -w` bounds the connects
/// that must fail.)
fn fetch_script(host: &str, tries: u32) -> String {
    format!(
        "i=0; while [ $i -lt {tries} ]; do if wget -q -O - http://{host}:8080/; then exit 0; fi; i=$((i+1)); sleep 0.2; done; exit 1"
    )
}

#[test]
fn containers_find_and_reach_each_other_by_name_and_alias_but_not_across_networks() {
    root_only!();
    let a = NetworkGuard::create(&unique("net-a"), &[]);
    let b = NetworkGuard::create(&unique("net-b"), &[]);
    let web = a.container("web");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--rootfs",
        &r,
        "--name",
        &web,
        "--network",
        &a.name,
        "--network-alias",
        "db",
        "--network-alias",
        "Cache.Local",
        "/bin/sh",
        "-c",
        "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]));
    let web_ip = wait_for("web's endpoint", std::time::Duration::from_secs(10), || {
        let v = inspect(&a.name);
        let c = v["Containers"].as_object()?.values().next()?.clone();
        assert_eq!(c["Name"], web.as_str());
        Some(c["IPv4Address"].as_str()?.split('/').next()?.to_owned())
    });
    // The container's inspect shows docker's NetworkSettings.Networks.
    let c: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &web]))).unwrap();
    let mine = &c[0]["NetworkSettings"]["Networks"][&a.name];
    assert_eq!(mine["NetworkID"], a.id.as_str(), "{c}");
    assert_eq!(mine["IPAddress"], web_ip.as_str(), "{c}");
    assert_eq!(
        mine["Aliases"],
        serde_json::json!(["db", "cache.local"]),
        "{c}"
    );
    let a_subnet = inspect(&a.name)["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        a_subnet.starts_with(&web_ip[..web_ip.rfind('.').unwrap()]),
        "{web_ip} in {a_subnet}"
    );

    // On the same network: by container name and by each alias (case-insensitive), over TCP;
    // the resolver is 127.0.0.11 and answers with web's address.
    for host in [web.as_str(), "db", "cache.local", "CACHE.LOCAL"] {
        let o = sh(&["--network", &a.name], &fetch_script(host, 50));
        assert_eq!(code(&o), Some(0), "{host}: {}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains("hello-from-web"),
            "{host}: {}",
            stdout(&o)
        );
    }
    let o = sh(
        &["--network", &a.name],
        &format!("cat /etc/resolv.conf; nslookup {web} 127.0.0.11; ping -c 1 -W 2 db; printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 {web_ip} 8080"),
    );
    let out = stdout(&o);
    // The positive control of the nc probes below: on the same network it connects.
    assert!(out.contains("hello-from-web"), "{out}");
    assert_eq!(code(&o), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert!(out.contains(&format!("Address: {web_ip}")), "{out}");
    assert!(out.contains("1 packets received"), "{out}");
    // An unknown name is NXDOMAIN, at once.
    let o = sh(&["--network", &a.name], "nslookup nobody-here 127.0.0.11");
    assert_ne!(code(&o), Some(0));
    assert!(stdout(&o).contains("NXDOMAIN"), "{}", stdout(&o));

    // From another user-defined network: the name does not resolve and the address is not
    // reachable (the host does not route between gocker's bridges), though its own gateway is.
    let o = sh(
        &["--network", &b.name],
        &format!(
            "nslookup {web} 127.0.0.11; echo ns=$?; printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 {web_ip} 8080; echo tcp=$?; ping -c 1 -W 1 {web_ip}; echo ping=$?"
        ),
    );
    let out = stdout(&o);
    assert!(out.contains("ns=1"), "{out}");
    assert!(
        out.contains("tcp=1") && !out.contains("hello-from-web"),
        "{out}"
    );
    assert!(out.contains("ping=1"), "{out}");
    // From the default bridge neither (and docker's default bridge has no name resolution).
    let o = sh(
        &["--network", "bridge"],
        &format!("printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 {web_ip} 8080; echo tcp=$?"),
    );
    let out = stdout(&o);
    assert!(
        out.contains("tcp=1") && !out.contains("hello-from-web"),
        "{out}{}",
        stderr(&o)
    );

    // In use: rm refuses, naming the container; after it is gone, everything goes.
    let o = g(&["network", "rm", &a.name]);
    assert_eq!(code(&o), Some(1));
    assert!(
        stderr(&o).contains(&web) && stderr(&o).contains("in use"),
        "{}",
        stderr(&o)
    );
    ok(&g(&["rm", "-f", &web]));
    assert_eq!(
        ok(&g(&["network", "rm", &a.name, &b.name])).lines().count(),
        2
    );
    assert_gone(&a.bridge(), &a.id);
    assert_gone(&b.bridge(), &b.id);
}

#[test]
fn a_stopped_container_keeps_its_network_in_use() {
    root_only!();
    // Its prunes select it by a label of its own: an unscoped prune would remove the networks
    // that tests running beside this one have created and not used yet.
    let mine = format!("gocker-test={}", unique("stopped"));
    let n = NetworkGuard::create(&unique("net-stopped"), &["--label", &mine]);
    let c = n.container("stopped");
    let r = rootfs();
    ok(&g(&[
        "run",
        "--rootfs",
        &r,
        "--name",
        &c,
        "--network",
        &n.name,
        "/bin/true",
    ]));
    // Its endpoint is gone with its monitor, but the container (and its network) remains.
    assert!(inspect(&n.name)["Containers"]
        .as_object()
        .unwrap()
        .is_empty());
    let o = g(&["network", "rm", &n.name]);
    assert_eq!(code(&o), Some(1));
    assert!(stderr(&o).contains(&c), "{}", stderr(&o));
    let o = g(&["network", "ls", "-q", "--filter", "dangling=true"]);
    assert!(!ok(&o).contains(&n.id[..12]), "{}", stdout(&o));
    // `network prune` keeps it too.
    ok(&g(&[
        "network",
        "prune",
        "-f",
        "--filter",
        &format!("label={mine}"),
    ]));
    assert!(net_dir().join("networks").join(&n.id).exists());
    ok(&g(&["rm", &c]));
    assert!(ok(&g(&["network", "ls", "-q", "--filter", "dangling=true"])).contains(&n.id[..12]));
    let out = ok(&g(&[
        "network",
        "prune",
        "-f",
        "--filter",
        &format!("label={mine}"),
        "--filter",
        "label!=keep",
    ]));
    assert!(
        out.contains("Deleted Networks:") && out.contains(&n.name),
        "{out}"
    );
    assert_gone(&n.bridge(), &n.id);
}

#[test]
fn internal_networks_have_no_way_out_and_refuse_published_ports() {
    root_only!();
    let n = NetworkGuard::create(&unique("net-int"), &["--internal"]);
    assert_eq!(inspect(&n.name)["Internal"], true);
    let gw = inspect(&n.name)["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_owned();
    // No default route (/proc/net/route: no destination 00000000); the bridge itself answers.
    let o = sh(
        &["--network", &n.name],
        &format!("cat /proc/net/route; ping -c 1 -W 2 {gw}; echo gw=$?"),
    );
    let out = stdout(&o);
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("00000000")),
        "{out}"
    );
    assert!(out.contains("gw=0"), "{out}{}", stderr(&o));
    let r = rootfs();
    let o = g(&[
        "run",
        "--rm",
        "--rootfs",
        &r,
        "--network",
        &n.name,
        "-p",
        "18099:80",
        "/bin/true",
    ]);
    assert_eq!(code(&o), Some(125));
    assert!(stderr(&o).contains("--internal"), "{}", stderr(&o));
    ok(&g(&["network", "rm", &n.name]));
    assert_gone(&n.bridge(), &n.id);
}

#[test]
fn published_ports_work_on_a_user_network() {
    root_only!();
    use std::io::{Read, Write};
    let n = NetworkGuard::create(&unique("net-pub"), &[]);
    let c = n.container("pub");
    let port = 18700 + (std::process::id() % 90) as u16;
    let r = rootfs();
    let publish = format!("127.0.0.1:{port}:8080");
    ok(&g(&[
        "run",
        "-d",
        "--rm",
        "--rootfs",
        &r,
        "--name",
        &c,
        "--network",
        &n.name,
        "-p",
        &publish,
        "/bin/sh",
        "-c",
        "mkdir -p /www && echo published-ok > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]));
    let body = wait_for(
        "the published port",
        std::time::Duration::from_secs(10),
        || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .ok()?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
            let mut b = String::new();
            s.read_to_string(&mut b).ok()?;
            b.contains("published-ok").then_some(b)
        },
    );
    assert!(body.contains("200 OK"), "{body}");
    ok(&g(&["rm", "-f", &c]));
    ok(&g(&["network", "rm", &n.name]));
    assert_gone(&n.bridge(), &n.id);
}

#[test]
fn run_flags_are_checked() {
    root_only!();
    let r = rootfs();
    let o = g(&[
        "run",
        "--rm",
        "--rootfs",
        &r,
        "--network",
        "no-such-net-y",
        "/bin/true",
    ]);
    assert_eq!(code(&o), Some(125));
    assert!(
        stderr(&o).contains("no-such-net-y") && stderr(&o).contains("gocker network create"),
        "{}",
        stderr(&o)
    );
    let o = g(&[
        "run",
        "--rm",
        "--rootfs",
        &r,
        "--network",
        "bridge",
        "--network-alias",
        "x",
        "/bin/true",
    ]);
    assert_eq!(code(&o), Some(125));
    assert!(stderr(&o).contains("--network-alias"), "{}", stderr(&o));
    let n = NetworkGuard::create(&unique("net-alias"), &[]);
    let o = g(&[
        "run",
        "--rm",
        "--rootfs",
        &r,
        "--network",
        &n.name,
        "--network-alias",
        "../x",
        "/bin/true",
    ]);
    assert_eq!(code(&o), Some(125));
    assert!(stderr(&o).contains("\"../x\""), "{}", stderr(&o));
}

#[test]
fn a_sigkilled_monitor_leaves_nothing_that_blocks_rm() {
    root_only!();
    let n = NetworkGuard::create(&unique("net-kill"), &[]);
    let c = n.container("killed");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--rm",
        "--rootfs",
        &r,
        "--name",
        &c,
        "--network",
        &n.name,
        "sleep",
        "300",
    ]));
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &c]))).unwrap();
    let monitor = v[0]["monitor_pid"]
        .as_i64()
        .expect("monitor_pid in inspect") as i32;
    wait_for("the endpoint", std::time::Duration::from_secs(10), || {
        (!inspect(&n.name)["Containers"].as_object()?.is_empty()).then_some(())
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // The container's processes die with their monitor (or are collected); the endpoint of a
    // dead monitor is not listed and does not block rm once the container is removed.
    wait_for(
        "the dead endpoint to go",
        std::time::Duration::from_secs(10),
        || {
            inspect(&n.name)["Containers"]
                .as_object()?
                .is_empty()
                .then_some(())
        },
    );
    let _ = g(&["rm", "-f", &c]);
    ok(&g(&["network", "rm", &n.name]));
    assert_gone(&n.bridge(), &n.id);
}

/// The files of `dir` (leases, endpoint records), empty when it does not exist.
fn entries(dir: PathBuf) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn connect_reaches_the_second_network_by_name_and_disconnect_takes_it_away() {
    root_only!();
    // b first: guards drop in reverse, so a's c1 (connected to b) is removed before b.
    let b = NetworkGuard::create(&unique("net-cb"), &[]);
    let a = NetworkGuard::create(&unique("net-ca"), &[]);
    let r = rootfs();
    let one = a.container("c1");
    let two = b.container("c2");
    for (n, net) in [(&one, &a.name), (&two, &b.name)] {
        ok(&g(&[
            "run",
            "-d",
            "--rootfs",
            &r,
            "--name",
            n,
            "--network",
            net,
            "/bin/sh",
            "-c",
            "sleep 300",
        ]));
    }
    let leases = || entries(net_dir().join(b.bridge()).join("leases"));
    let endpoints = || entries(net_dir().join("networks").join(&b.id).join("endpoints"));
    let one_id = inspect_container(&one)["Id"].as_str().unwrap().to_owned();
    let veth = format!("gx{}{}", &b.id[..6], &one_id[..7]);
    assert_eq!(leases().len(), 1, "{:?}", leases());
    // Before: the other network's name does not resolve from c1.
    let o = g(&["exec", &one, "ping", "-c", "1", "-W", "1", &two]);
    assert_ne!(code(&o), Some(0));

    ok(&g(&[
        "network", "connect", "--alias", "second", &b.name, &one,
    ]));
    // A second interface in c1 with an address of b, a veth on b's bridge, a lease, an endpoint.
    let ip = inspect_container(&one)["NetworkSettings"]["Networks"][&b.name]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!ip.is_empty(), "{}", inspect_container(&one));
    let inside = ok(&g(&["exec", &one, "ip", "-o", "-4", "addr"]));
    assert!(
        inside
            .lines()
            .any(|l| l.contains("eth1") && l.contains(&format!("inet {ip}/"))),
        "{inside}"
    );
    let host = links();
    assert!(
        host.lines()
            .any(|l| l.contains(&format!("{veth}@"))
                && l.contains(&format!("master {} ", b.bridge()))),
        "{host}"
    );
    assert!(leases().contains(&ip), "{:?}", leases());
    assert!(endpoints().contains(&one_id), "{:?}", endpoints());
    // c1 reaches c2 by name; c2 reaches c1 by its name and its alias on b (b's resolver).
    let o = g(&["exec", &one, "ping", "-c", "1", "-W", "2", &two]);
    assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), stderr(&o));
    for name in [one.as_str(), "second"] {
        let o = g(&["exec", &two, "ping", "-c", "1", "-W", "2", name]);
        assert_eq!(code(&o), Some(0), "{name}: {}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains(&format!("({ip})")), "{}", stdout(&o));
    }
    // c1 keeps its first network and its name there.
    let o = g(&["exec", &one, "nslookup", &one, "127.0.0.11"]);
    assert_eq!(code(&o), Some(0), "{}", stdout(&o));
    // Connected twice: refused.
    let o = g(&["network", "connect", &b.name, &one]);
    assert_eq!(code(&o), Some(125));
    assert!(stderr(&o).contains("already connected"), "{}", stderr(&o));

    ok(&g(&["network", "disconnect", &b.name, &one]));
    let o = g(&["exec", &one, "ping", "-c", "1", "-W", "1", &two]);
    assert_ne!(code(&o), Some(0), "{}", stdout(&o));
    let o = g(&["exec", &two, "nslookup", &one, "127.0.0.11"]);
    assert_ne!(code(&o), Some(0), "{}", stdout(&o));
    assert!(!ok(&g(&["exec", &one, "ip", "-o", "link"])).contains("eth1"));
    assert!(!links().contains(&veth), "{}", links());
    assert_eq!(leases().len(), 1, "only c2's lease: {:?}", leases());
    assert!(!endpoints().contains(&one_id), "{:?}", endpoints());
    assert!(inspect_container(&one)["NetworkSettings"]["Networks"][&b.name].is_null());
    // Again: not connected (125), unless -f; its first network: refused.
    let o = g(&["network", "disconnect", &b.name, &one]);
    assert_eq!(code(&o), Some(125));
    assert!(stderr(&o).contains("not connected"), "{}", stderr(&o));
    ok(&g(&["network", "disconnect", "-f", &b.name, &one]));
    let o = g(&["network", "disconnect", &a.name, &one]);
    assert_eq!(code(&o), Some(125));
    assert!(
        stderr(&o).contains("cannot be disconnected"),
        "{}",
        stderr(&o)
    );

    // A connected container keeps the network in use (c2 gone); its end removes what connect
    // made.
    ok(&g(&["network", "connect", &b.name, &one]));
    assert_eq!(leases().len(), 2, "{:?}", leases());
    ok(&g(&["rm", "-f", &two]));
    let o = g(&["network", "rm", &b.name]);
    assert_eq!(code(&o), Some(1));
    assert!(stderr(&o).contains(&one), "{}", stderr(&o));
    ok(&g(&["stop", "-t", "1", &one]));
    wait_for(
        "c1's lease on b to go",
        std::time::Duration::from_secs(10),
        || (leases().is_empty() && !endpoints().contains(&one_id)).then_some(()),
    );
    // The veth goes with c1's network namespace (the kernel's cleanup worker, soon after).
    wait_for(
        "c1's veth on b to go",
        std::time::Duration::from_secs(10),
        || (!links().contains(&veth)).then_some(()),
    );
    ok(&g(&["rm", "-f", &one]));
    ok(&g(&["network", "rm", &a.name, &b.name]));
    assert_gone(&a.bridge(), &a.id);
    assert_gone(&b.bridge(), &b.id);
}

#[test]
fn a_sigkilled_monitor_leaves_no_connected_lease_endpoint_or_veth() {
    root_only!();
    let b = NetworkGuard::create(&unique("net-ck"), &[]);
    let a = NetworkGuard::create(&unique("net-ck"), &[]);
    let c = a.container("ckill");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--rootfs",
        &r,
        "--name",
        &c,
        "--network",
        &a.name,
        "sleep",
        "300",
    ]));
    ok(&g(&["network", "connect", &b.name, &c]));
    let v = inspect_container(&c);
    let id = v["Id"].as_str().unwrap().to_owned();
    let veth = format!("gx{}{}", &b.id[..6], &id[..7]);
    let leases = || entries(net_dir().join(b.bridge()).join("leases"));
    assert_eq!(leases().len(), 1);
    assert!(links().contains(&veth));
    let monitor = v["monitor_pid"].as_i64().expect("monitor_pid") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // The next gocker collects the dead owner's lease and endpoint; the veth goes with the
    // container's network namespace.
    wait_for(
        "the connected leftovers to go",
        std::time::Duration::from_secs(15),
        || {
            let _ = g(&["ps", "-a"]);
            (leases().is_empty()
                && entries(net_dir().join("networks").join(&b.id).join("endpoints")).is_empty()
                && !links().contains(&veth))
            .then_some(())
        },
    );
    let _ = g(&["rm", "-f", &c]);
    ok(&g(&["network", "rm", &a.name, &b.name]));
    assert_gone(&a.bridge(), &a.id);
    assert_gone(&b.bridge(), &b.id);
}

#[test]
fn connect_refuses_unknown_networks_and_containers_and_stopped_or_netless_ones() {
    root_only!();
    let b = NetworkGuard::create(&unique("net-cr"), &[]);
    let r = rootfs();
    let none = b.container("cnone");
    ok(&g(&[
        "run",
        "-d",
        "--rootfs",
        &r,
        "--name",
        &none,
        "--network",
        "none",
        "/bin/sh",
        "-c",
        "sleep 300",
    ]));
    let o = g(&["network", "connect", &unique("no-such-net"), &none]);
    assert_eq!(code(&o), Some(1));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = g(&["network", "connect", &b.name, &unique("no-such-container")]);
    assert_ne!(code(&o), Some(0));
    assert!(stderr(&o).contains("no such container"), "{}", stderr(&o));
    let o = g(&["network", "connect", "bridge", &none]);
    assert_eq!(code(&o), Some(125));
    assert!(
        stderr(&o).contains("run --network bridge"),
        "{}",
        stderr(&o)
    );
    let o = g(&["network", "connect", &b.name, &none]);
    assert_eq!(code(&o), Some(125));
    assert!(stderr(&o).contains("not on a bridge"), "{}", stderr(&o));
    let o = g(&["network", "connect", "--alias", "bad name", &b.name, &none]);
    assert_eq!(code(&o), Some(125), "{}", stderr(&o));
    let done = b.container("cdone");
    ok(&g(&[
        "run",
        "--rootfs",
        &r,
        "--name",
        &done,
        "--network",
        &b.name,
        "/bin/true",
    ]));
    let o = g(&["network", "connect", &b.name, &done]);
    assert_eq!(code(&o), Some(125));
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
    assert!(entries(net_dir().join(b.bridge()).join("leases")).is_empty());
    ok(&g(&["rm", "-f", &none, &done]));
}

#[test]
fn rootless_create_and_run_are_refused_naming_the_alternative() {
    if is_root() {
        eprintln!(
            "skipped as root: this checks the refusal for unprivileged users (rootless modes)"
        );
        return;
    }
    let o = g(&["network", "create", &unique("net-user")]);
    assert_eq!(code(&o), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains("need root") && e.contains("pasta") && e.contains("-p"),
        "{e}"
    );
    let r = rootfs();
    let o = g(&[
        "run",
        "--rm",
        "--rootfs",
        &r,
        "--network",
        "mynet",
        "/bin/true",
    ]);
    assert_eq!(code(&o), Some(125));
    assert!(
        stderr(&o).contains("\"mynet\"") && stderr(&o).contains("need root"),
        "{}",
        stderr(&o)
    );
    // connect and disconnect: the same refusal.
    for verb in ["connect", "disconnect"] {
        let o = g(&["network", verb, "mynet", "somecontainer"]);
        assert_eq!(code(&o), Some(125), "{verb}");
        assert!(stderr(&o).contains("need root"), "{verb}: {}", stderr(&o));
    }
    // ls works and shows the predefined networks only.
    let ls = ok(&g(&["network", "ls"]));
    assert_eq!(ls.lines().count(), 4, "{ls}");
}
