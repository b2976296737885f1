//! Kubernetes' path to a runtime: containerd's CRI plugin with a runtime handler (`gocker`, what a
//! RuntimeClass names) of type `io.containerd.runc.v2` whose runc binary is gocker-oci, driven over
//! CRI v1 as a kubelet would (root phase of `cargo xtask itest`).
//!
//! A private containerd (config, root, state, socket, CNI dirs and gocker-oci's state root in a
//! temporary directory) with the CRI plugin, snapshotter `native`, and `sandbox_image` set to the
//! test rootfs imported as an image (podman import + save as an OCI archive, then `ctr image
//! import` into CRI's `k8s.io` namespace); its default command is a long sleep, so it serves as
//! the pause image too. Pods use the host network (no CNI).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

const IMAGE: &str = "localhost/gocker-test-busybox:latest";
const NS: &str = "k8s.io";

/// Host pids whose command line mentions `needle` (the private containerd's socket: its shims).
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != me)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    c.split(|&b| b == 0)
                        .any(|a| String::from_utf8_lossy(a).contains(needle))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Mount points at or below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Vec<String> {
    let d = dir.to_str().unwrap();
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m == d || m.starts_with(&format!("{d}/")))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

/// The shim's socket of a task (containerd 1.6 `shim.SocketAddress`): `/run/containerd/s/` and the
/// sha256 of `<containerd address>/<namespace>/<id>`; it stays behind when a shim is killed.
fn shim_socket(address: &Path, id: &str) -> PathBuf {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{}/{NS}/{id}", address.display()).as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from("/run/containerd/s").join(hex)
}

struct Daemon {
    dir: PathBuf,
    child: Option<Child>,
    /// Sandboxes run (for the shim sockets that a killed shim leaves).
    pods: Vec<String>,
    /// The cgroup parent containerd names (`/k8s.io`, below the cgroup2 mount) when this test
    /// made it: gocker-oci removes only the containers' leaves.
    cgroup_parent: Option<PathBuf>,
}

impl Daemon {
    fn sock(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    fn oci_root(&self) -> PathBuf {
        self.dir.join("gocker-oci")
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(self.sock())
            .args(["-n", NS])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    async fn client(&self) -> RuntimeServiceClient<Channel> {
        let path = self.sock();
        let ch = Endpoint::try_from("http://[::]:0")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .expect("connect to containerd's CRI socket");
        RuntimeServiceClient::new(ch)
    }

    /// The end of containerd's log (for failure messages).
    fn log(&self) -> String {
        let all = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(120)..].join("\n")
    }

    /// What gocker-oci still holds in its private state root.
    fn oci_left(&self) -> Vec<String> {
        std::fs::read_dir(self.oci_root())
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Best effort through CRI first (a failed assertion leaves pods running).
        if self.child.is_some() {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    let fut = async {
                        let mut c = self.client().await;
                        if let Ok(l) = c
                            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
                            .await
                        {
                            for p in l.into_inner().items {
                                let _ = c
                                    .stop_pod_sandbox(StopPodSandboxRequest {
                                        pod_sandbox_id: p.id.clone(),
                                    })
                                    .await;
                                let _ = c
                                    .remove_pod_sandbox(RemovePodSandboxRequest {
                                        pod_sandbox_id: p.id,
                                    })
                                    .await;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(20), fut).await;
                });
            }
            let _ = self.ctr(&["image", "rm", IMAGE]);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Shims (and anything else started with our socket's path) outlive containerd.
        let sock = self.sock();
        for p in pids_mentioning(sock.to_str().unwrap()) {
            // SAFETY: plain kill(2) of a pid read from /proc; no memory is involved.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let bin = env!("CARGO_BIN_EXE_gocker-oci");
        for id in self.oci_left() {
            let _ = Command::new(bin)
                .arg("--root")
                .arg(self.oci_root())
                .args(["delete", "--force", &id])
                .output();
        }
        for m in mounts_below(&self.dir) {
            let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
        }
        for id in &self.pods {
            let _ = std::fs::remove_file(shim_socket(&sock, id));
        }
        if let Some(cg) = &self.cgroup_parent {
            let _ = std::fs::remove_dir(cg);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Host network; the pod's IPC namespace; one PID namespace for the pod (`shareProcessNamespace`).
fn ns_options() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Pod as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn pod_config(dir: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "hello-gocker".into(),
            uid: "gocker-cri-test-uid".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "hello-gocker".into(),
        log_directory: dir.join("pods").to_str().unwrap().into(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(ns_options()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, cmd: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        linux: Some(LinuxContainerConfig {
            // What a kubelet sends for a BestEffort pod.
            resources: Some(LinuxContainerResources {
                cpu_shares: 2,
                oom_score_adj: 1000,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(ns_options()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// Whether containerd may hand cgroups and limits to gocker-oci: only on a pure cgroup v2 host
/// with the cpu and memory controllers (CRI gives every sandbox cpu.shares 2). On a hybrid host
/// (cpu bound to v1) gocker-oci refuses them, as it must, so the CRI plugin's `disable_cgroup`
/// drops `linux.resources` limits and `linux.cgroupsPath` from every spec instead.
fn cgroups_usable() -> bool {
    let c = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    let has = |n: &str| c.split_whitespace().any(|x| x == n);
    has("cpu") && has("memory")
}

/// CAP_SYS_RESOURCE in this process's effective set: without it (some sandboxes drop it from the
/// bounding set) nobody can lower an oom_score_adj, and CRI asks -998 for the sandbox, so the CRI
/// plugin's `restrict_oom_score_adj` clamps it to containerd's own.
fn has_sys_resource() -> bool {
    let st = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = st
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_RESOURCE: u32 = 24; // linux/capability.h
    eff & (1 << CAP_SYS_RESOURCE) != 0
}

/// Where gocker-oci puts an absolute `cgroupsPath`: the cgroup2 mount (the empty `unified` one on
/// a hybrid host).
fn cgroup2_mount() -> PathBuf {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    }
}

fn start_daemon(dir: &Path, disable_cgroup: bool) -> Daemon {
    let d = dir.display();
    let bin = env!("CARGO_BIN_EXE_gocker-oci");
    std::fs::create_dir_all(dir.join("cni/bin")).unwrap();
    std::fs::create_dir_all(dir.join("cni/conf")).unwrap();
    std::fs::create_dir_all(dir.join("pods")).unwrap();
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    let rt = format!("{cri}.containerd.runtimes.gocker");
    let restrict_oom = !has_sys_resource();
    eprintln!("cri: disable_cgroup = {disable_cgroup}, restrict_oom_score_adj = {restrict_oom}");
    let cgroup_parent = Some(cgroup2_mount().join("k8s.io")).filter(|p| !p.exists());
    let config = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{d}/containerd.sock"
[{cri}]
  sandbox_image = "{IMAGE}"
  disable_cgroup = {disable_cgroup}
  restrict_oom_score_adj = {restrict_oom}
  enable_selinux = false
  disable_apparmor = true
[{cri}.cni]
  bin_dir = "{d}/cni/bin"
  conf_dir = "{d}/cni/conf"
[{cri}.containerd]
  snapshotter = "native"
  default_runtime_name = "gocker"
[{rt}]
  runtime_type = "io.containerd.runc.v2"
[{rt}.options]
  BinaryName = "{bin}"
  Root = "{d}/gocker-oci"
  SystemdCgroup = false
"#
    );
    let daemon = Daemon {
        dir: dir.to_owned(),
        child: Some(common::spawn_containerd(dir, &config)),
        pods: Vec::new(),
        cgroup_parent,
    };
    common::wait_for_containerd(dir);
    daemon
}

/// The test rootfs as an image in CRI's namespace; its command sleeps (it is the pause image).
fn import_image(daemon: &Daemon) {
    common::import_rootfs_image(&daemon.dir, Some(r#"["/bin/sleep", "100000"]"#), |a| {
        daemon.ctr(a)
    });
}

#[test]
fn cri_pod_with_gocker_runtime_handler() {
    if std::env::var("GOCKER_TEST_MODE").as_deref() != Ok("root") {
        eprintln!("cri test: root phase only");
        return;
    }
    let t0 = Instant::now();
    let dir = std::env::temp_dir().join(format!("gocker-cri-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut daemon = start_daemon(&dir, !cgroups_usable());
    import_image(&daemon);
    eprintln!("cri: containerd up, image imported in {:?}", t0.elapsed());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // containerd retries a failed stop forever: bound the whole flow.
    let done = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), flow(&mut daemon)).await });
    assert!(
        done.is_ok(),
        "the CRI flow did not finish in 60 s; containerd log:\n{}",
        daemon.log()
    );
    eprintln!("cri: pod flow done at {:?}", t0.elapsed());
    drop(daemon);
    assert!(!dir.exists(), "{} left behind", dir.display());
    eprintln!("cri: cleaned up at {:?}", t0.elapsed());
}

/// Without `disable_cgroup` on a host whose cpu controller is not on cgroup v2, the sandbox's
/// `linux.resources.cpu.shares` (2, set by CRI for every pod) is refused by name, and nothing is
/// left (gocker-oci refuses a limit it cannot apply rather than dropping it).
#[test]
fn cri_sandbox_cpu_shares_refused_without_a_cgroup_v2_cpu_controller() {
    if std::env::var("GOCKER_TEST_MODE").as_deref() != Ok("root") {
        eprintln!("cri test: root phase only");
        return;
    }
    if cgroups_usable() {
        eprintln!("cri refusal test: the cpu controller is on cgroup v2 here; nothing to refuse");
        return;
    }
    let dir = std::env::temp_dir().join(format!("gocker-cri-refused-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let daemon = start_daemon(&dir, false);
    import_image(&daemon);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = daemon.client().await;
        let r = c
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod_config(&daemon.dir)),
                runtime_handler: "gocker".into(),
            })
            .await;
        let e = r.expect_err("RunPodSandbox asking cpu.shares without a cgroup v2 cpu controller");
        assert!(
            e.message().contains("controllers not available") && e.message().contains("cpu"),
            "{e}"
        );
        let pods = c
            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
            .await
            .expect("ListPodSandbox")
            .into_inner()
            .items;
        assert!(pods.is_empty(), "{pods:?}");
    });
    let ns_root = daemon.oci_root().join(NS);
    let left = common::containers_left(&ns_root);
    assert!(left.is_empty(), "left in gocker-oci's state root: {left:?}");
    if let Some(p) = &daemon.cgroup_parent {
        assert!(!p.exists(), "{} made", p.display());
    }
    drop(daemon);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// A task's bundle (containerd's runc shim state) while it exists.
fn bundle(daemon: &Daemon, id: &str) -> PathBuf {
    daemon
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(NS)
        .join(id)
}

fn init_pid(daemon: &Daemon, id: &str) -> i32 {
    let f = bundle(daemon, id).join("init.pid");
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        .trim()
        .parse()
        .unwrap()
}

async fn create_and_start(
    daemon: &Daemon,
    c: &mut RuntimeServiceClient<Channel>,
    pod_id: &str,
    pod: &PodSandboxConfig,
    cc: ContainerConfig,
) -> String {
    let cid = match c
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id.into(),
            config: Some(cc),
            sandbox_config: Some(pod.clone()),
        })
        .await
    {
        Ok(r) => r.into_inner().container_id,
        Err(e) => panic!("CreateContainer: {e}\ncontainerd log:\n{}", daemon.log()),
    };
    if let Err(e) = c
        .start_container(StartContainerRequest {
            container_id: cid.clone(),
        })
        .await
    {
        panic!("StartContainer: {e}\ncontainerd log:\n{}", daemon.log());
    }
    cid
}

async fn status(c: &mut RuntimeServiceClient<Channel>, cid: &str) -> ContainerStatus {
    c.container_status(ContainerStatusRequest {
        container_id: cid.into(),
        verbose: false,
    })
    .await
    .expect("ContainerStatus")
    .into_inner()
    .status
    .expect("status")
}

async fn flow(daemon: &mut Daemon) {
    let mut c = daemon.client().await;
    let v = c
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .expect("Version")
        .into_inner();
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");

    // The pod: RuntimeClass handler "gocker", host network.
    let pod = pod_config(&daemon.dir);
    let pod_id = match c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: "gocker".into(),
        })
        .await
    {
        Ok(r) => r.into_inner().pod_sandbox_id,
        Err(e) => panic!("RunPodSandbox: {e}\ncontainerd log:\n{}", daemon.log()),
    };
    daemon.pods.push(pod_id.clone());
    let st = c
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.clone(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .expect("status");
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32, "{st:?}");
    assert_eq!(st.runtime_handler, "gocker");
    let sandbox_pid = init_pid(daemon, &pod_id);
    assert!(
        daemon.oci_root().join(NS).join(&pod_id).exists(),
        "the sandbox is not in gocker-oci's state root: {:?}",
        daemon.oci_left()
    );

    // A container that prints and exits: it joins the sandbox's IPC, UTS and PID namespaces by
    // path (and the user namespace owning the PID namespace): the pause process is its PID 1.
    let hello = create_and_start(
        daemon,
        &mut c,
        &pod_id,
        &pod,
        container_config(
            "hello",
            &[
                "sh",
                "-c",
                "echo hello-cri; id -u; cat /proc/self/oom_score_adj; tr '\\0' ' ' </proc/1/cmdline; echo; sleep 1",
            ],
        ),
    )
    .await;
    let hello_pid = init_pid(daemon, &hello);
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bundle(daemon, &hello).join("config.json")).unwrap(),
    )
    .unwrap();
    let ns = &spec["linux"]["namespaces"];
    eprintln!(
        "cri: container spec: namespaces {ns} resources {} cgroupsPath {} oomScoreAdj {}",
        spec["linux"]["resources"], spec["linux"]["cgroupsPath"], spec["process"]["oomScoreAdj"]
    );
    for typ in ["ipc", "uts", "pid"] {
        let joined = ns
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == typ)
            .and_then(|n| n["path"].as_str());
        assert_eq!(
            joined,
            Some(format!("/proc/{sandbox_pid}/ns/{typ}").as_str()),
            "{typ}: {ns}"
        );
    }
    let t = Instant::now();
    let st = loop {
        let s = status(&mut c, &hello).await;
        if s.state == ContainerState::ContainerExited as i32 {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "container did not exit: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&st.log_path).unwrap_or_default();
    assert_eq!(st.exit_code, 0, "{st:?}\nlog:\n{log}");
    // CRI log lines: "<time> stdout F <line>".
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(" stdout F "))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        lines,
        ["hello-cri", "0", "1000", "/bin/sleep 100000 "],
        "{log}"
    );

    // A long-running container and ExecSync in it (exit status, output, the pod's IPC namespace
    // and its own mqueue of it).
    let sleeper = create_and_start(
        daemon,
        &mut c,
        &pod_id,
        &pod,
        container_config("sleeper", &["sleep", "100000"]),
    )
    .await;
    let sleeper_pid = init_pid(daemon, &sleeper);
    for kind in ["pid", "user"] {
        let link = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
        assert_eq!(
            link(sleeper_pid),
            link(sandbox_pid),
            "{kind} namespace shared"
        );
    }
    let s = status(&mut c, &sleeper).await;
    assert_eq!(s.state, ContainerState::ContainerRunning as i32, "{s:?}");
    let r = c
        .exec_sync(ExecSyncRequest {
            container_id: sleeper.clone(),
            cmd: [
                "sh",
                "-c",
                "echo in-exec; readlink /proc/self/ns/ipc; grep ' /dev/mqueue ' /proc/mounts | cut -d' ' -f3; exit 3",
            ]
            .map(String::from)
            .to_vec(),
            timeout: 10,
        })
        .await
        .unwrap_or_else(|e| panic!("ExecSync: {e}\ncontainerd log:\n{}", daemon.log()))
        .into_inner();
    let pod_ipc = std::fs::read_link(format!("/proc/{sandbox_pid}/ns/ipc")).unwrap();
    assert_eq!(
        (r.exit_code, String::from_utf8_lossy(&r.stdout).into_owned()),
        (3, format!("in-exec\n{}\nmqueue\n", pod_ipc.display())),
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );

    // Stop and remove the pod, as the kubelet does when it is deleted.
    let t = Instant::now();
    if let Err(e) = c
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod_id.clone(),
        })
        .await
    {
        panic!("StopPodSandbox: {e}\ncontainerd log:\n{}", daemon.log());
    }
    assert_eq!(
        status(&mut c, &sleeper).await.state,
        ContainerState::ContainerExited as i32
    );
    if let Err(e) = c
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod_id.clone(),
        })
        .await
    {
        panic!("RemovePodSandbox: {e}\ncontainerd log:\n{}", daemon.log());
    }
    eprintln!("cri: stop + remove took {:?}", t.elapsed());
    let pods = c
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await
        .expect("ListPodSandbox")
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
    let ctrs = c
        .list_containers(ListContainersRequest { filter: None })
        .await
        .expect("ListContainers")
        .into_inner()
        .containers;
    assert!(ctrs.is_empty(), "{ctrs:?}");

    // Nothing of it is left: gocker-oci state, processes, the shim, its socket, mounts.
    let left: Vec<_> = daemon
        .oci_left()
        .into_iter()
        .flat_map(|n| {
            std::fs::read_dir(daemon.oci_root().join(&n))
                .map(|r| {
                    r.flatten()
                        .map(|e| format!("{n}/{}", e.file_name().to_string_lossy()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .filter(|n| !n.ends_with("/names"))
        .collect();
    assert!(left.is_empty(), "left in gocker-oci's state root: {left:?}");
    for pid in [sandbox_pid, hello_pid, sleeper_pid] {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still there"
        );
    }
    let sock = daemon.sock();
    let t = Instant::now();
    loop {
        let shims = pids_mentioning(sock.to_str().unwrap());
        if shims.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "shim still running: {shims:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!shim_socket(&sock, &pod_id).exists());
    let m = mounts_below(&daemon.dir);
    assert!(m.is_empty(), "mounts left: {m:?}");
}
