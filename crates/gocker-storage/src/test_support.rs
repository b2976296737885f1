//! Test support (cargo feature `test-support`): a real OCI distribution registry on 127.0.0.1 —
//! Debian's `docker-registry` (the CNCF distribution registry) — started on a random port,
//! optionally behind TLS with a self-signed CA and htpasswd basic auth, fed with `skopeo copy`,
//! and killed (its directory removed) on drop. Used by the integration tests of this crate's
//! dependents (e.g. `gocker-cli`'s `tests/images.rs`); not part of the storage API.
//!
//! Needs the Debian packages `docker-registry`, `skopeo`, and for TLS `apache2-utils` (htpasswd)
//! and `openssl`: [`require_tools`] fails naming the package to install.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Panics naming the Debian package of the first tool (from `tools`: (program, package)) not
/// found in `PATH`.
pub fn require_tools(tools: &[(&str, &str)]) {
    let packages: Vec<&str> = tools.iter().map(|t| t.1).collect();
    for (tool, package) in tools {
        assert!(
            have_tool(tool),
            "`{tool}` not found in PATH: install the Debian package `{package}` (apt-get install {})",
            packages.join(" ")
        );
    }
}

/// Whether `tool` is an executable file in a `PATH` directory.
pub fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Runs `cmd`, panicking with both streams unless it succeeds; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A registry process; killed and its directory removed on drop.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// The CA certificate (TLS registries).
    pub tls: Option<PathBuf>,
    /// The htpasswd user and password (TLS registries).
    pub creds: Option<(String, String)>,
}

impl Registry {
    /// Start a registry on a free 127.0.0.1 port: plain http, or (`tls_and_auth`) https with a
    /// CA made here and htpasswd basic auth (user `gocker`). Waits until it listens.
    pub fn start(tls_and_auth: bool) -> Registry {
        require_tools(&[("docker-registry", "docker-registry"), ("skopeo", "skopeo")]);
        if tls_and_auth {
            require_tools(&[("htpasswd", "apache2-utils"), ("openssl", "openssl")]);
        }
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).expect("registry storage dir");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        let (mut tls, mut creds) = (None, None);
        if tls_and_auth {
            let d = dir.path();
            let ossl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d));
            let ec = [
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ];
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            a.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"]);
            a.extend(["-subj", "/CN=gocker test CA"]);
            ossl(&a);
            let mut a = vec!["req"];
            a.extend(ec);
            a.extend([
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ]);
            ossl(&a);
            fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").expect("write ext.cnf");
            ossl(&[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ]);
            let ht = run(Command::new("htpasswd").args(["-Bbn", "gocker", "s3cret-pw"]));
            fs::write(d.join("htpasswd"), ht).expect("write htpasswd");
            yaml.push_str(&format!(
                "  tls:\n    certificate: {0}/srv.crt\n    key: {0}/srv.key\nauth:\n  htpasswd:\n    realm: gocker-test\n    path: {0}/htpasswd\n",
                d.display()
            ));
            tls = Some(d.join("ca.crt"));
            creds = Some(("gocker".to_string(), "s3cret-pw".to_string()));
        }
        let cfg = dir.path().join("config.yml");
        fs::write(&cfg, yaml).expect("write registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut r = Registry {
            child,
            dir,
            port,
            tls,
            creds,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = r.child.try_wait() {
                panic!("docker-registry exited with {st}: {}", r.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The registry's own file for a blob (to tamper with it).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!(
            "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// `skopeo copy oci:LAYOUT:TAG docker://HOST/REPO_TAG` (`all`: every platform of an index).
    pub fn push(&self, layout: &Path, tag: &str, repo_tag: &str, all: bool) {
        let mut c = Command::new("skopeo");
        c.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if all {
            c.arg("--all");
        }
        if let Some((u, p)) = &self.creds {
            c.arg(format!("--dest-creds={u}:{p}"));
        }
        c.arg(format!("oci:{}:{tag}", layout.display()));
        c.arg(format!("docker://{}/{repo_tag}", self.host()));
        // skopeo keeps its blob-info cache under $HOME or XDG dirs; a test user may have none.
        if std::env::var_os("HOME").is_none() {
            c.env("HOME", self.dir.path());
        }
        run(&mut c);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
