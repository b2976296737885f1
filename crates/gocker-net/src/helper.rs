//! The rootless drivers: slirp4netns and pasta, run as children of ring0 that die with it
//! (slirp4netns through `--exit-fd`, pasta through PR_SET_PDEATHSIG) and are killed at teardown.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::PortMapping;
use crate::{NetError, Result};

/// slirp4netns's fixed addresses with `--configure`.
pub const SLIRP_GUEST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 100);
pub const SLIRP_DNS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 3);

/// Finds `name` in PATH (and the usual sbin directories).
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok());
    found
}

/// A running helper process.
pub struct Helper {
    pub name: &'static str,
    child: Option<Child>,
    /// slirp4netns: the write end of `--exit-fd` (closing it stops slirp4netns).
    _exit_w: Option<OwnedFd>,
    /// Wait for the exit when stopping: the helper holds published host ports until it is gone,
    /// and the next container may want them at once.
    holds_ports: bool,
}

impl Helper {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("a running helper has its child")
    }
}

/// Helpers told to stop whose exit has not been collected yet.
static STOPPING: std::sync::Mutex<Vec<(Child, Instant)>> = std::sync::Mutex::new(Vec::new());

/// Collects helpers that were told to stop, and SIGKILLs one that ignored that for a second.
pub fn reap_stopped() {
    let Ok(mut v) = STOPPING.lock() else { return };
    v.retain_mut(|(c, since)| match c.try_wait() {
        Ok(None) if since.elapsed() < Duration::from_secs(1) => true,
        Ok(None) => {
            let _ = c.kill();
            let _ = c.wait();
            false
        }
        _ => false,
    });
}

impl Drop for Helper {
    fn drop(&mut self) {
        // slirp4netns exits when its --exit-fd closes; pasta has no state worth a graceful stop
        // (and lingers on SIGTERM): it is SIGKILLed.
        self._exit_w = None;
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.name == "pasta" {
            let _ = child.kill();
        }
        // The exit takes the kernel tens of milliseconds (closing the tap device waits for an RCU
        // grace period). Waited for only when the helper holds host ports; otherwise it is
        // collected by the next `reap_stopped`, or by init once this process exits (dead or dying
        // either way).
        if self.holds_ports {
            let end = Instant::now() + Duration::from_secs(1);
            while let Ok(None) = child.try_wait() {
                if Instant::now() > end {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        } else if let Ok(None) = child.try_wait() {
            if let Ok(mut v) = STOPPING.lock() {
                v.push((child, Instant::now()));
            }
        }
        reap_stopped();
    }
}

fn helper_err(name: &'static str, message: impl Into<String>) -> NetError {
    NetError::Helper {
        helper: name,
        message: message.into(),
    }
}

fn die_with_parent(cmd: &mut Command, keep: Vec<i32>) {
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, fcntl) on descriptors that exist in the child.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            for fd in &keep {
                libc::fcntl(*fd, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
}

/// Collects what the helper printed (it has exited).
fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s.trim().lines().last().unwrap_or("").to_owned()
}

/// Starts slirp4netns for the network namespace of `pid` (joining its user namespace) and
/// publishes `ports` through its API socket at `api`.
pub fn slirp4netns(
    pid: i32,
    api: &Path,
    ports: &[PortMapping],
    timeout: Duration,
) -> Result<Helper> {
    const NAME: &str = "slirp4netns";
    let bin = find(NAME).ok_or(NetError::MissingHelper {
        mode: NAME.into(),
        helper: NAME,
        package: "slirp4netns",
    })?;
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| helper_err(NAME, format!("pipe: {e}")))?;
    let (exit_r, exit_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| helper_err(NAME, format!("pipe: {e}")))?;
    let _ = std::fs::remove_file(api);
    let mut cmd = Command::new(bin);
    cmd.args([
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        "--enable-sandbox",
        "--enable-seccomp",
    ])
    .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
    .arg(format!("--exit-fd={}", exit_r.as_raw_fd()))
    .arg("--api-socket")
    .arg(api)
    .arg(pid.to_string())
    .arg("tap0")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    die_with_parent(&mut cmd, vec![ready_w.as_raw_fd(), exit_r.as_raw_fd()]);
    let child = cmd
        .spawn()
        .map_err(|e| helper_err(NAME, format!("spawn: {e}")))?;
    drop(ready_w);
    drop(exit_r);
    let mut helper = Helper {
        name: NAME,
        child: Some(child),
        _exit_w: Some(exit_w),
        holds_ports: !ports.is_empty(),
    };
    // Ready: one byte on the ready fd; EOF means it died.
    let mut ready = std::fs::File::from(ready_r);
    let mut fds = [rustix::event::PollFd::new(
        &ready,
        rustix::event::PollFlags::IN,
    )];
    let t = rustix::event::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: 0,
    };
    let n = rustix::event::poll(&mut fds, Some(&t))
        .map_err(|e| helper_err(NAME, format!("poll: {e}")))?;
    let mut b = [0u8; 1];
    if n == 0 || ready.read(&mut b).unwrap_or(0) == 0 {
        let _ = helper.child().kill();
        let _ = helper.child().wait();
        let msg = stderr_of(helper.child());
        return Err(helper_err(
            NAME,
            if n == 0 {
                format!("not ready after {timeout:?}")
            } else {
                format!("exited during setup: {msg}")
            },
        ));
    }
    for p in ports {
        // A port the previous holder is still releasing (its exit is in progress) is retried
        // briefly; a port that stays taken is an error naming it.
        let end = Instant::now() + Duration::from_millis(500);
        loop {
            match add_hostfwd(api, p, timeout) {
                Err(NetError::Invalid { .. }) if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                r => break r?,
            }
        }
    }
    Ok(helper)
}

fn add_hostfwd(api: &Path, p: &PortMapping, timeout: Duration) -> Result<()> {
    const NAME: &str = "slirp4netns";
    let req = serde_json::json!({"execute": "add_hostfwd", "arguments": {
        "proto": p.proto.as_str(),
        "host_addr": p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED).to_string(),
        "host_port": p.host_port,
        "guest_port": p.container_port,
    }});
    let mut s = std::os::unix::net::UnixStream::connect(api)
        .map_err(|e| helper_err(NAME, format!("connect {}: {e}", api.display())))?;
    let _ = s.set_read_timeout(Some(timeout));
    s.write_all(req.to_string().as_bytes())
        .map_err(|e| helper_err(NAME, format!("api write: {e}")))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .map_err(|e| helper_err(NAME, format!("api read: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&resp)
        .map_err(|e| helper_err(NAME, format!("api response {resp:?}: {e}")))?;
    if let Some(err) = v.get("error") {
        return Err(NetError::Invalid {
            flag: "--publish",
            value: p.to_string(),
            reason: format!(
                "slirp4netns add_hostfwd: {}",
                err["desc"].as_str().unwrap_or(&err.to_string())
            ),
        });
    }
    Ok(())
}

/// pasta's `-t`/`-u` argument for one mapping.
pub fn pasta_port_arg(p: &PortMapping) -> String {
    match p.host_ip {
        Some(ip) => format!("{ip}/{}:{}", p.host_port, p.container_port),
        None => format!("{}:{}", p.host_port, p.container_port),
    }
}

/// The pasta command line for the namespaces of `pid` (joined by pid).
pub fn pasta_args(pid: i32, pidfile: &Path, ports: &[PortMapping]) -> Vec<String> {
    let mut a: Vec<String> = ["--config-net", "--quiet", "--foreground", "--no-map-gw"]
        .map(String::from)
        .to_vec();
    a.push("--pid".into());
    a.push(pidfile.display().to_string());
    let mut tcp = 0;
    let mut udp = 0;
    for p in ports {
        let flag = match p.proto {
            crate::ports::Proto::Tcp => {
                tcp += 1;
                "-t"
            }
            crate::ports::Proto::Udp => {
                udp += 1;
                "-u"
            }
        };
        a.push(flag.into());
        a.push(pasta_port_arg(p));
    }
    // No automatic forwarding: only what was published, and nothing from the container to the
    // host's loopback (like slirp4netns --disable-host-loopback).
    if tcp == 0 {
        a.extend(["-t".into(), "none".into()]);
    }
    if udp == 0 {
        a.extend(["-u".into(), "none".into()]);
    }
    a.extend(["-T", "none", "-U", "none"].map(String::from));
    a.push(pid.to_string());
    a
}

/// Starts pasta in the foreground for the namespaces of `pid`; ready once it wrote its pid file
/// (pasta does that after configuring the namespace).
pub fn pasta(pid: i32, pidfile: &Path, ports: &[PortMapping], timeout: Duration) -> Result<Helper> {
    const NAME: &str = "pasta";
    let bin = find(NAME).ok_or(NetError::MissingHelper {
        mode: NAME.into(),
        helper: NAME,
        package: "passt",
    })?;
    let _ = std::fs::remove_file(pidfile);
    let mut cmd = Command::new(bin);
    cmd.args(pasta_args(pid, pidfile, ports))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd, Vec::new());
    let child = cmd
        .spawn()
        .map_err(|e| helper_err(NAME, format!("spawn: {e}")))?;
    let mut helper = Helper {
        name: NAME,
        child: Some(child),
        _exit_w: None,
        holds_ports: !ports.is_empty(),
    };
    let started = Instant::now();
    let end = started + timeout;
    loop {
        if std::fs::read_to_string(pidfile)
            .map(|s| !s.trim().is_empty())
            .unwrap_or(false)
        {
            let _ = std::fs::remove_file(pidfile);
            tracing::debug!("pasta ready after {:?}", started.elapsed());
            return Ok(helper);
        }
        if let Ok(Some(st)) = helper.child().try_wait() {
            let msg = stderr_of(helper.child());
            return Err(helper_err(
                NAME,
                format!("exited during setup ({st}): {msg}"),
            ));
        }
        if Instant::now() > end {
            return Err(helper_err(NAME, format!("not ready after {timeout:?}")));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasta_arguments() {
        let p: PortMapping = "127.0.0.1:18082:80".parse().unwrap();
        let q: PortMapping = "5353:53/udp".parse().unwrap();
        let a = pasta_args(42, Path::new("/x/pid"), &[p, q]).join(" ");
        assert!(
            a.contains("-t 127.0.0.1/18082:80") && a.contains("-u 5353:53"),
            "{a}"
        );
        assert!(!a.contains("-t none") && !a.contains("-u none"));
        assert!(a.ends_with("-T none -U none 42"));
        let a = pasta_args(7, Path::new("/x/pid"), &[]).join(" ");
        assert!(a.contains("-t none -u none"), "{a}");
    }
}
