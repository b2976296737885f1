//! Bearer-token auth and Range handling against a small fake registry on 127.0.0.1 (the Debian
//! registry has no token server), including a server that ignores Range and a corrupt partial.

mod common;

use base64::Engine as _;
use common::*;
use gocker_storage::{
    ClientConfig, Credentials, Digest, Reference, RegistryClient, StorageError, Store,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

struct Fake {
    port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    honour_range: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Content {
    manifest: Vec<u8>,
    blobs: HashMap<String, Vec<u8>>,
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let _ = s.write_all(r.as_bytes());
    let _ = s.write_all(body);
}

fn handle(mut s: TcpStream, port: u16, c: &Content, log: &Mutex<Vec<String>>, honour_range: bool) {
    let mut rd = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if rd.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut h = HashMap::new();
    loop {
        let mut l = String::new();
        rd.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            h.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let auth = h.get("authorization").cloned().unwrap_or_default();
    log.lock().unwrap().push(format!(
        "{path} auth={auth} range={}",
        h.get("range").cloned().unwrap_or_default()
    ));
    let challenge = (
        "WWW-Authenticate",
        format!(
            r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake-registry",scope="repository:lib/app:pull""#
        ),
    );
    if let Some(q) = path.strip_prefix("/token?") {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pw")
        );
        if auth != want
            || !q.contains("service=fake-registry")
            || !q.contains("scope=repository%3Alib%2Fapp%3Apull")
        {
            return respond(
                &mut s,
                "401 Unauthorized",
                &[],
                br#"{"details":"bad credentials"}"#,
            );
        }
        return respond(
            &mut s,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            br#"{"token":"tok123"}"#,
        );
    }
    if auth != "Bearer tok123" {
        return respond(
            &mut s,
            "401 Unauthorized",
            &[challenge],
            br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        );
    }
    if path == "/v2/" {
        return respond(&mut s, "200 OK", &[], b"{}");
    }
    if path == "/v2/lib/app/manifests/v1" {
        return respond(
            &mut s,
            "200 OK",
            &[
                (
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".into(),
                ),
                ("Docker-Content-Digest", sha256(&c.manifest)),
            ],
            &c.manifest,
        );
    }
    if let Some(d) = path.strip_prefix("/v2/lib/app/blobs/") {
        let Some(b) = c.blobs.get(d) else {
            return respond(
                &mut s,
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#,
            );
        };
        if let (Some(r), true) = (h.get("range"), honour_range) {
            let start: usize = r
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let cr = format!("bytes {start}-{}/{}", b.len() - 1, b.len());
            return respond(
                &mut s,
                "206 Partial Content",
                &[("Content-Range", cr)],
                &b[start..],
            );
        }
        return respond(&mut s, "200 OK", &[], b);
    }
    respond(&mut s, "404 Not Found", &[], b"{}");
}

fn start(content: Content) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let honour_range = Arc::new(AtomicBool::new(true));
    let (st, lg, hr) = (stop.clone(), log.clone(), honour_range.clone());
    let thread = std::thread::spawn(move || {
        for s in l.incoming() {
            if st.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(s) = s {
                handle(s, port, &content, &lg, hr.load(Ordering::Relaxed));
            }
        }
    });
    Fake {
        port,
        stop,
        log,
        honour_range,
        thread: Some(thread),
    }
}

fn image() -> (Content, String, Vec<u8>) {
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let tar = RawTar::new().file("data", &noise, 0o644).finish();
    let layer = gzip(&tar);
    let cfg = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&cfg), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let mut blobs = HashMap::new();
    blobs.insert(sha256(&cfg), cfg);
    let ld = sha256(&layer);
    blobs.insert(ld.clone(), layer.clone());
    (Content { manifest, blobs }, ld, layer)
}

fn client(port: u16, creds: Option<(&str, &str)>) -> RegistryClient {
    let mut c = ClientConfig {
        auth: gocker_storage::AuthConfig { files: vec![] },
        insecure_registries: vec![format!("127.0.0.1:{port}")],
        ..ClientConfig::default()
    };
    if let Some((u, p)) = creds {
        c.credentials.insert(
            format!("127.0.0.1:{port}"),
            Credentials {
                username: u.into(),
                password: p.into(),
            },
        );
    }
    RegistryClient::new(c)
}

#[test]
fn bearer_token_is_fetched_with_basic_credentials_and_used_for_every_request() {
    let (content, layer_digest, _) = image();
    let fake = start(content);
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    let r = Reference::parse(&format!("127.0.0.1:{}/lib/app:v1", fake.port)).unwrap();

    let e = client(fake.port, Some(("alice", "wrong")))
        .pull(&store, &r, None)
        .unwrap_err();
    assert!(matches!(e, StorageError::Auth { .. }), "{e:?}");
    assert!(
        e.to_string().contains("token endpoint") && e.to_string().contains("401"),
        "{e}"
    );

    let p = client(fake.port, Some(("alice", "pw")))
        .pull(&store, &r, None)
        .unwrap();
    assert_eq!(p.layers[0].to_string(), layer_digest);
    let log = fake.log.lock().unwrap().clone();
    let blob_reqs: Vec<_> = log.iter().filter(|l| l.contains("/blobs/")).collect();
    assert!(
        !blob_reqs.is_empty() && blob_reqs.iter().all(|l| l.contains("auth=Bearer tok123")),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.starts_with("/token?")), "{log:#?}");
}

#[test]
fn a_server_that_ignores_range_restarts_the_blob_and_a_corrupt_partial_is_discarded() {
    let (content, layer_digest, layer) = image();
    let fake = start(content);
    let r = Reference::parse(&format!("127.0.0.1:{}/lib/app:v1", fake.port)).unwrap();
    let c = client(fake.port, Some(("alice", "pw")));
    let partial_of = |sd: &std::path::Path| {
        sd.join("tmp/partial")
            .join(layer_digest.trim_start_matches("sha256:"))
    };

    // A correct partial, but the server answers 200 to the Range request: start over, still right.
    fake.honour_range.store(false, Ordering::Relaxed);
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    std::fs::write(partial_of(sd.path()), &layer[..layer.len() / 2]).unwrap();
    let p = c.pull(&store, &r, None).unwrap();
    assert_eq!(p.bytes_resumed, 0);
    assert!(store.has_blob(&Digest::parse(&layer_digest).unwrap()));

    // A corrupt partial with a server that honours Range: the digest check fails, the partial is
    // dropped, the image is not listed; the next pull fetches it whole and succeeds.
    fake.honour_range.store(true, Ordering::Relaxed);
    let sd = tempfile::tempdir().unwrap();
    let store = Store::open(sd.path()).unwrap();
    std::fs::write(partial_of(sd.path()), vec![0u8; layer.len() / 2]).unwrap();
    let e = c.pull(&store, &r, None).unwrap_err();
    assert!(matches!(e, StorageError::DigestMismatch { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&layer_digest) && e.to_string().contains(&r.to_string()),
        "{e}"
    );
    assert!(!partial_of(sd.path()).exists());
    assert!(store.list_images().unwrap().is_empty());
    let p = c.pull(&store, &r, None).unwrap();
    assert_eq!(p.bytes_resumed, 0);
    assert_eq!(store.list_images().unwrap().len(), 1);
    let log = fake.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|l| l.contains("range=bytes=")),
        "Range was sent: {log:#?}"
    );
    drop(log);
    let mut sink = Vec::new();
    store
        .open_blob(&p.layers[0])
        .unwrap()
        .read_to_end(&mut sink)
        .unwrap();
    assert_eq!(sink, layer);
}
