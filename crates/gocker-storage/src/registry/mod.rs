//! A registry client for the OCI distribution spec (blocking, on `ureq` + `rustls`).
//!
//! Pull = resolve the manifest (an index is narrowed to this platform), fetch the config, fetch
//! the layers in parallel into the store (resuming partial downloads with `Range`), verify every
//! blob, and write the ref last.

mod auth;

pub use auth::{AuthConfig, Credentials};

use crate::digest::Digest;
use crate::error::{IoContext, Result, StorageError};
use crate::reference::Reference;
use crate::store::{hash_file, media_types as mt, parse_json, ImageRecord, Store, MAX_JSON_BLOB};
use base64::Engine as _;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Registries (`host[:port]`) with `tls_verify=false`: certificates are not checked, and plain
    /// http is used when https does not answer.
    pub insecure_registries: Vec<String>,
    /// A PEM file with extra CA certificates trusted in addition to the system roots.
    pub extra_ca_file: Option<PathBuf>,
    /// Where credentials are looked up.
    pub auth: AuthConfig,
    /// Credentials given explicitly (e.g. `--creds`), by registry; these win over auth files.
    pub credentials: HashMap<String, Credentials>,
    /// Layers downloaded at once.
    pub max_parallel_downloads: usize,
    /// Platform wanted from a multi-arch index: (os, architecture, variant).
    pub platform: (String, String, Option<String>),
    pub connect_timeout: Duration,
    /// Timeout of each read (a stalled connection fails; the next pull resumes).
    pub read_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: Vec::new(),
            extra_ca_file: None,
            auth: AuthConfig::default_locations(),
            credentials: HashMap::new(),
            max_parallel_downloads: 3,
            platform: host_platform(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// The platform of this process in OCI terms, e.g. `("linux", "amd64", None)`.
pub fn host_platform() -> (String, String, Option<String>) {
    let (arch, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" => ("ppc64le", None),
        "riscv64" => ("riscv64", None),
        "s390x" => ("s390x", None),
        a => (a, None),
    };
    ("linux".into(), arch.into(), variant.map(String::from))
}

/// Progress of one blob download, given to the progress callback.
#[derive(Clone, Debug)]
pub struct LayerProgress {
    pub image: String,
    pub blob: Digest,
    /// Size from the manifest.
    pub total: u64,
    /// Bytes on disk for this blob, including resumed ones.
    pub downloaded: u64,
    /// Bytes that were already there from an interrupted download.
    pub resumed_from: u64,
    /// The blob was already in the store: nothing downloaded.
    pub reused: bool,
    pub done: bool,
}

/// The callback: return `Err(reason)` to stop the pull (the partial download is kept).
pub type ProgressFn<'a> = dyn Fn(&LayerProgress) -> std::result::Result<(), String> + Sync + 'a;

/// The outcome of a pull.
#[derive(Clone, Debug)]
pub struct PulledImage {
    pub reference: Reference,
    pub record: ImageRecord,
    pub config: Digest,
    pub layers: Vec<Digest>,
    /// Blob bytes received over the network by this pull (manifests excluded).
    pub bytes_fetched: u64,
    /// Bytes of layers that were resumed from partial downloads.
    pub bytes_resumed: u64,
    /// Layers already complete in the store.
    pub layers_reused: usize,
}

/// The registry client.
#[derive(Debug)]
pub struct RegistryClient {
    config: ClientConfig,
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl RegistryClient {
    pub fn new(config: ClientConfig) -> Self {
        RegistryClient { config }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn session(&self, reference: &Reference) -> Result<Session> {
        let registry = reference.registry().to_string();
        let insecure = self
            .config
            .insecure_registries
            .iter()
            .any(|r| r == &registry);
        let tls = tls_config(&registry, self.config.extra_ca_file.as_deref(), insecure)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .timeout_connect(self.config.connect_timeout)
            .timeout_read(self.config.read_timeout)
            .user_agent(concat!("gocker/", env!("CARGO_PKG_VERSION")))
            .build();
        let host = if registry == crate::reference::DEFAULT_REGISTRY {
            "registry-1.docker.io".to_string()
        } else {
            registry.clone()
        };
        let credentials = match self.config.credentials.get(&registry) {
            Some(c) => Some(c.clone()),
            None => self.config.auth.lookup(&registry, reference.repository())?,
        };
        let mut s = Session {
            agent,
            registry,
            repository: reference.repository().to_string(),
            base: format!("https://{host}"),
            credentials,
            auth_header: Mutex::new(None),
        };
        // Pick the scheme: https always; http only for a registry named insecure.
        let ping = format!("{}/v2/", s.base);
        match s.agent.get(&ping).call() {
            Ok(_) | Err(ureq::Error::Status(..)) => {}
            Err(ureq::Error::Transport(t)) if insecure => {
                let http = format!("http://{host}");
                match s.agent.get(&format!("{http}/v2/")).call() {
                    Ok(_) | Err(ureq::Error::Status(..)) => s.base = http,
                    Err(ureq::Error::Transport(t2)) => {
                        return Err(StorageError::Transport {
                            registry: s.registry,
                            url: ping,
                            detail: format!("https: {t}; http: {t2}"),
                        })
                    }
                }
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(StorageError::Transport {
                    registry: s.registry,
                    url: ping,
                    detail: t.to_string(),
                })
            }
        }
        Ok(s)
    }

    /// Fetch the manifest (or index) that `reference` names, without storing anything.
    /// Returns the raw bytes, their digest and media type.
    pub fn fetch_manifest(&self, reference: &Reference) -> Result<(Vec<u8>, Digest, String)> {
        let s = self.session(reference)?;
        s.manifest(
            &reference.to_string(),
            &reference.manifest_selector(),
            reference.digest(),
        )
    }

    /// Pull an image into the store and point `reference` at it.
    pub fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        progress: Option<&ProgressFn<'_>>,
    ) -> Result<PulledImage> {
        let _lock = store.lock_shared()?;
        let image = reference.to_string();
        let s = self.session(reference)?;
        let (bytes, digest, media_type) =
            s.manifest(&image, &reference.manifest_selector(), reference.digest())?;
        let (index, manifest_bytes, manifest_digest, manifest_mt) = if is_index(&media_type, &bytes)
        {
            let idx: ImageIndex =
                parse_json("image index", &format!("{digest} of image {image}"), &bytes)?;
            let chosen = self.choose_platform(&image, &idx)?;
            let (mb, md, mmt) = s.manifest(&image, &chosen.to_string(), Some(&chosen))?;
            if is_index(&mmt, &mb) {
                return Err(StorageError::UnsupportedMediaType {
                    image,
                    what: format!("manifest {md} (nested index)"),
                    media_type: mmt,
                });
            }
            (Some((digest, bytes)), mb, md, mmt)
        } else {
            (None, bytes, digest, media_type)
        };
        let manifest: ImageManifest = parse_json(
            "image manifest",
            &format!("{manifest_digest} of image {image}"),
            &manifest_bytes,
        )?;
        let config_mt = manifest.config().media_type().to_string();
        if config_mt != mt::OCI_CONFIG && config_mt != mt::DOCKER_CONFIG {
            return Err(StorageError::UnsupportedMediaType {
                image,
                what: format!("config of manifest {manifest_digest}"),
                media_type: config_mt,
            });
        }
        let mut layers = Vec::new();
        for l in manifest.layers() {
            let lmt = l.media_type().to_string();
            let ok = lmt.starts_with("application/vnd.oci.image.layer.")
                || lmt.starts_with("application/vnd.docker.image.rootfs.");
            if !ok || lmt.contains("foreign") && l.urls().as_ref().is_some_and(|u| !u.is_empty()) {
                return Err(StorageError::UnsupportedMediaType {
                    image,
                    what: format!("layer {}", l.digest()),
                    media_type: lmt,
                });
            }
            layers.push((Digest::from_oci(l.digest())?, l.size()));
        }
        let config_digest = Digest::from_oci(manifest.config().digest())?;
        let fetched = AtomicU64::new(0);
        let resumed = AtomicU64::new(0);
        // The config first: small, and its diff_ids must match the layer count.
        let cstats = s.blob(
            store,
            &image,
            &config_digest,
            manifest.config().size(),
            None,
            &AtomicBool::new(false),
        )?;
        fetched.fetch_add(cstats.fetched, Ordering::Relaxed);
        let cbytes = store.read_blob(&image, &config_digest)?;
        let config: ImageConfiguration = parse_json(
            "image config",
            &format!("{config_digest} of image {image}"),
            &cbytes,
        )?;
        if config.rootfs().diff_ids().len() != layers.len() {
            return Err(StorageError::Json {
                what: "image config",
                location: format!("{config_digest} of image {image}"),
                detail: format!(
                    "{} diff_ids for {} layers",
                    config.rootfs().diff_ids().len(),
                    layers.len()
                ),
            });
        }
        // Layers in parallel.
        let next = AtomicUsize::new(0);
        let reused = AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        let first_error: Mutex<Option<StorageError>> = Mutex::new(None);
        let workers = self
            .config
            .max_parallel_downloads
            .clamp(1, 16)
            .min(layers.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    if abort.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((d, size)) = layers.get(i) else { return };
                    match s.blob(store, &image, d, *size, progress, &abort) {
                        Ok(st) => {
                            fetched.fetch_add(st.fetched, Ordering::Relaxed);
                            resumed.fetch_add(st.resumed, Ordering::Relaxed);
                            if st.reused {
                                reused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            abort.store(true, Ordering::Relaxed);
                            let mut fe = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            // Keep the root cause, not the "stopped because another failed".
                            let secondary = matches!(&e, StorageError::Interrupted { reason, .. } if reason == ANOTHER_FAILED);
                            if fe.is_none() || (!secondary && matches!(&*fe, Some(StorageError::Interrupted { reason, .. }) if reason == ANOTHER_FAILED)) {
                                *fe = Some(e);
                            }
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        // All blobs are in: the manifest(s), then the ref, last.
        if let Some((idx_digest, idx_bytes)) = &index {
            store.put_blob_bytes(&image, Some(idx_digest), idx_bytes)?;
        }
        store.put_blob_bytes(&image, Some(&manifest_digest), &manifest_bytes)?;
        let record = ImageRecord {
            manifest: manifest_digest,
            media_type: manifest_mt,
            index: index.map(|(d, _)| d),
        };
        store.set_ref(reference, record.clone())?;
        Ok(PulledImage {
            reference: reference.clone(),
            record,
            config: config_digest,
            layers: layers.into_iter().map(|(d, _)| d).collect(),
            bytes_fetched: fetched.into_inner(),
            bytes_resumed: resumed.into_inner(),
            layers_reused: reused.into_inner(),
        })
    }

    fn choose_platform(&self, image: &str, idx: &ImageIndex) -> Result<Digest> {
        let (os, arch, variant) = &self.config.platform;
        let mut best: Option<(u8, Digest)> = None;
        let mut available = Vec::new();
        for m in idx.manifests() {
            let Some(p) = m.platform() else { continue };
            let (pos, parch) = (p.os().to_string(), p.architecture().to_string());
            let pvar = p.variant().clone();
            available.push(match &pvar {
                Some(v) => format!("{pos}/{parch}/{v}"),
                None => format!("{pos}/{parch}"),
            });
            if &pos != os || &parch != arch {
                continue;
            }
            let score = match (&pvar, variant) {
                (Some(a), Some(b)) if a == b => 3,
                (None, _) => 2,
                (Some(_), None) => 1,
                _ => 0,
            };
            if score > 0 && best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, Digest::from_oci(m.digest())?));
            }
        }
        best.map(|(_, d)| d)
            .ok_or_else(|| StorageError::NoMatchingPlatform {
                image: image.into(),
                platform: match variant {
                    Some(v) => format!("{os}/{arch}/{v}"),
                    None => format!("{os}/{arch}"),
                },
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            })
    }
}

const ANOTHER_FAILED: &str = "stopped because another download failed";

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type == mt::OCI_INDEX || media_type == mt::DOCKER_LIST {
        return true;
    }
    if media_type == mt::OCI_MANIFEST || media_type == mt::DOCKER_MANIFEST {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(bytes)
        .map(|v| v.get("manifests").is_some())
        .unwrap_or(false)
}

/// The TLS settings for `registry`: the system's roots plus `extra_ca` (PEM), or, for a
/// registry named insecure (`tls_verify=false`), any certificate (the connection is still
/// encrypted; the server is not authenticated, as `--tls-verify=false` says).
fn tls_config(
    registry: &str,
    extra_ca: Option<&std::path::Path>,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>> {
    let tls_err = |detail: String| StorageError::Tls {
        registry: registry.to_owned(),
        detail,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = extra_ca {
        let pem = std::fs::read(ca).ctx("read CA file", ca)?;
        let certs = pem_blocks(&pem);
        if certs.is_empty() {
            return Err(tls_err(format!(
                "{}: no PEM certificate found",
                ca.display()
            )));
        }
        for c in certs {
            let der = pem_der(&c).ok_or_else(|| {
                tls_err(format!(
                    "{}: a certificate is not valid base64",
                    ca.display()
                ))
            })?;
            roots
                .add(rustls::pki_types::CertificateDer::from(der))
                .map_err(|e| tls_err(format!("{}: {e}", ca.display())))?;
        }
    }
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        // Certificates the system store has that rustls cannot parse are skipped, as curl does.
        for cert in rustls_native_certs::load_native_certs().unwrap_or_default() {
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The DER bytes of one PEM certificate block.
fn pem_der(block: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(block).ok()?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// `tls_verify=false`: accepts the server's certificate whatever it is; the handshake's
/// signatures are still checked with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn pem_blocks(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut rest = &text[..];
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find("-----END CERTIFICATE-----") else {
            break;
        };
        let end = start + end + "-----END CERTIFICATE-----".len();
        out.push(rest.as_bytes()[start..end].to_vec());
        rest = &rest[end..];
    }
    out
}

struct BlobStats {
    fetched: u64,
    resumed: u64,
    reused: bool,
}

struct Session {
    agent: ureq::Agent,
    registry: String,
    repository: String,
    base: String,
    credentials: Option<Credentials>,
    auth_header: Mutex<Option<String>>,
}

fn body_snippet(r: ureq::Response) -> String {
    let mut s = String::new();
    let _ = r.into_reader().take(512).read_to_string(&mut s);
    let s = s.trim().replace('\n', " ");
    if s.is_empty() {
        "(no body)".into()
    } else {
        s
    }
}

impl Session {
    fn current_auth(&self) -> Option<String> {
        self.auth_header
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Send a GET, answering one 401 challenge. Any other status is returned to the caller.
    fn get(&self, url: &str, headers: &[(&str, String)]) -> Result<ureq::Response> {
        for attempt in 0..2 {
            let mut req = self.agent.get(url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = self.current_auth() {
                req = req.set("Authorization", &a);
            }
            match req.call() {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if attempt == 0 => {
                    let challenge = r.header("www-authenticate").unwrap_or("").to_string();
                    self.authenticate(&challenge)?;
                }
                Err(ureq::Error::Status(401, r)) => {
                    return Err(StorageError::Auth {
                        registry: self.registry.clone(),
                        scope: format!("repository:{}:pull", self.repository),
                        detail: format!(
                            "credentials {} rejected: {}",
                            if self.credentials.is_some() {
                                "were"
                            } else {
                                "(none found) were"
                            },
                            body_snippet(r)
                        ),
                    })
                }
                Err(ureq::Error::Status(_, r)) => return Ok(r),
                Err(ureq::Error::Transport(t)) => {
                    return Err(StorageError::Transport {
                        registry: self.registry.clone(),
                        url: url.to_string(),
                        detail: t.to_string(),
                    })
                }
            }
        }
        unreachable!("the loop returns")
    }

    fn authenticate(&self, challenge: &str) -> Result<()> {
        let scope = format!("repository:{}:pull", self.repository);
        let auth_err = |detail: String| StorageError::Auth {
            registry: self.registry.clone(),
            scope: scope.clone(),
            detail,
        };
        let basic = self.credentials.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", c.username, c.password))
            )
        });
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let b = basic.ok_or_else(|| {
                auth_err("the registry wants basic auth and no credentials were found (auth.json / docker config.json)".into())
            })?;
            *self.auth_header.lock().unwrap_or_else(|p| p.into_inner()) = Some(b);
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(auth_err(format!("unsupported challenge {challenge:?}")));
        }
        let params = parse_challenge(params);
        let realm = params
            .get("realm")
            .ok_or_else(|| auth_err(format!("bearer challenge without realm: {challenge:?}")))?;
        let mut req = self.agent.get(realm);
        if let Some(svc) = params.get("service") {
            req = req.query("service", svc);
        }
        req = req.query(
            "scope",
            params.get("scope").map(String::as_str).unwrap_or(&scope),
        );
        if let Some(b) = &basic {
            req = req.set("Authorization", b);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                return Err(auth_err(format!(
                    "token endpoint {realm}: HTTP {code}: {}",
                    body_snippet(r)
                )))
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(auth_err(format!("token endpoint {realm}: {t}")))
            }
        };
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| auth_err(format!("token endpoint {realm}: {e}")))?;
        let t: Token = serde_json::from_slice(&body)
            .map_err(|e| auth_err(format!("token endpoint {realm}: bad JSON: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| auth_err(format!("token endpoint {realm} returned no token")))?;
        *self.auth_header.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(format!("Bearer {token}"));
        Ok(())
    }

    fn manifest(
        &self,
        image: &str,
        selector: &str,
        expect: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest, String)> {
        let url = format!("{}/v2/{}/manifests/{selector}", self.base, self.repository);
        let r = self.get(&url, &[("Accept", MANIFEST_ACCEPT.to_string())])?;
        match r.status() {
            200 => {}
            404 => {
                return Err(StorageError::ManifestUnknown {
                    image: image.to_string(),
                    registry: self.registry.clone(),
                    selector: selector.to_string(),
                    detail: body_snippet(r),
                })
            }
            code => {
                return Err(StorageError::Registry {
                    registry: self.registry.clone(),
                    method: "GET",
                    url,
                    status: code,
                    detail: body_snippet(r),
                })
            }
        }
        let media_type = r
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let header_digest = r.header("docker-content-digest").map(String::from);
        let mut body = Vec::new();
        r.into_reader()
            .take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut body)
            .map_err(|e| StorageError::Transport {
                registry: self.registry.clone(),
                url: url.clone(),
                detail: e.to_string(),
            })?;
        if body.len() as u64 > MAX_JSON_BLOB {
            return Err(StorageError::Json {
                what: "manifest",
                location: format!("{selector} of image {image}"),
                detail: format!("larger than {MAX_JSON_BLOB} bytes"),
            });
        }
        let actual = Digest::of(&body);
        let expected = match (expect, header_digest.as_deref().map(Digest::parse)) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(Ok(h))) => Some(h),
            _ => None,
        };
        if let Some(e) = expected {
            if e != actual {
                return Err(StorageError::DigestMismatch {
                    image: image.into(),
                    expected: e.to_string(),
                    actual: actual.to_string(),
                    size: body.len() as u64,
                });
            }
        }
        let media_type = if media_type.is_empty() || media_type == "application/json" {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(String::from)
                })
                .unwrap_or_else(|| mt::OCI_MANIFEST.to_string())
        } else {
            media_type
        };
        Ok((body, actual, media_type))
    }

    /// Download one blob into the store, resuming a partial download.
    fn blob(
        &self,
        store: &Store,
        image: &str,
        digest: &Digest,
        size: u64,
        progress: Option<&ProgressFn<'_>>,
        abort: &AtomicBool,
    ) -> Result<BlobStats> {
        let report = |downloaded: u64, resumed_from: u64, reused: bool, done: bool| -> Result<()> {
            if let Some(p) = progress {
                p(&LayerProgress {
                    image: image.to_string(),
                    blob: digest.clone(),
                    total: size,
                    downloaded,
                    resumed_from,
                    reused,
                    done,
                })
                .map_err(|reason| StorageError::Interrupted {
                    image: image.into(),
                    blob: digest.to_string(),
                    downloaded,
                    reason,
                })?;
            }
            Ok(())
        };
        if store.has_blob(digest) {
            report(size, 0, true, true)?;
            return Ok(BlobStats {
                fetched: 0,
                resumed: 0,
                reused: true,
            });
        }
        let ppath = store.partial_path(digest);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&ppath)
            .ctx("open partial download", &ppath)?;
        // One downloader per blob across processes; the other waits, then finds the blob stored.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).ctx("flock", &ppath)?;
        if store.has_blob(digest) {
            report(size, 0, true, true)?;
            return Ok(BlobStats {
                fetched: 0,
                resumed: 0,
                reused: true,
            });
        }
        let mut have = file.metadata().ctx("stat", &ppath)?.len();
        if have > size {
            file.set_len(0).ctx("truncate", &ppath)?;
            have = 0;
        }
        if have == size && size > 0 {
            let (d, _) = hash_file(&ppath)?;
            if &d == digest {
                store.adopt_file(image, &ppath, digest, Some(size))?;
                report(size, size, false, true)?;
                return Ok(BlobStats {
                    fetched: 0,
                    resumed: size,
                    reused: false,
                });
            }
            file.set_len(0).ctx("truncate", &ppath)?;
            have = 0;
        }
        let mut hasher = Sha256::new();
        if have > 0 {
            file.seek(SeekFrom::Start(0)).ctx("seek", &ppath)?;
            let n = std::io::copy(&mut (&mut file).take(have), &mut hasher)
                .ctx("read partial download", &ppath)?;
            if n != have {
                file.set_len(0).ctx("truncate", &ppath)?;
                hasher = Sha256::new();
                have = 0;
            }
        }
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let mut headers = Vec::new();
        if have > 0 {
            headers.push(("Range", format!("bytes={have}-")));
        }
        let r = self.get(&url, &headers)?;
        let resumed_from = match r.status() {
            206 if content_range_start(r.header("content-range")) == Some(have) => have,
            200 | 206 => {
                // The server ignored (or mangled) the range: start over.
                file.set_len(0).ctx("truncate", &ppath)?;
                hasher = Sha256::new();
                0
            }
            404 => {
                return Err(StorageError::BlobMissing {
                    image: image.into(),
                    blob: digest.to_string(),
                    detail: format!("registry {}: {}", self.registry, body_snippet(r)),
                })
            }
            code => {
                return Err(StorageError::Registry {
                    registry: self.registry.clone(),
                    method: "GET",
                    url,
                    status: code,
                    detail: body_snippet(r),
                })
            }
        };
        file.seek(SeekFrom::Start(resumed_from))
            .ctx("seek", &ppath)?;
        let mut downloaded = resumed_from;
        let mut fetched = 0u64;
        report(downloaded, resumed_from, false, false)?;
        let mut reader = r.into_reader();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if abort.load(Ordering::Relaxed) {
                file.flush().ctx("write partial download", &ppath)?;
                return Err(StorageError::Interrupted {
                    image: image.into(),
                    blob: digest.to_string(),
                    downloaded,
                    reason: ANOTHER_FAILED.into(),
                });
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(StorageError::Transport {
                        registry: self.registry.clone(),
                        url,
                        detail: format!(
                            "after {downloaded} of {size} bytes (the next pull resumes): {e}"
                        ),
                    })
                }
            };
            if downloaded + n as u64 > size {
                drop(file);
                let _ = std::fs::remove_file(&ppath);
                return Err(StorageError::SizeMismatch {
                    image: image.into(),
                    blob: digest.to_string(),
                    expected: size,
                    actual: downloaded + n as u64,
                });
            }
            file.write_all(&buf[..n])
                .ctx("write partial download", &ppath)?;
            hasher.update(&buf[..n]);
            downloaded += n as u64;
            fetched += n as u64;
            report(downloaded, resumed_from, false, false)?;
        }
        if downloaded != size {
            return Err(StorageError::Transport {
                registry: self.registry.clone(),
                url,
                detail: format!(
                    "connection closed after {downloaded} of {size} bytes (the next pull resumes)"
                ),
            });
        }
        let actual = Digest::from_hasher(hasher);
        if &actual != digest {
            drop(file);
            let _ = std::fs::remove_file(&ppath);
            return Err(StorageError::DigestMismatch {
                image: image.into(),
                expected: digest.to_string(),
                actual: actual.to_string(),
                size: downloaded,
            });
        }
        file.sync_all().ctx("fsync", &ppath)?;
        let dst = store.blob_path(digest);
        std::fs::rename(&ppath, &dst).ctx("rename blob into place", &dst)?;
        drop(file);
        report(downloaded, resumed_from, false, true)?;
        Ok(BlobStats {
            fetched,
            resumed: resumed_from,
            reused: false,
        })
    }
}

fn content_range_start(h: Option<&str>) -> Option<u64> {
    // "bytes START-END/TOTAL"
    let v = h?.trim().strip_prefix("bytes")?.trim();
    v.split('-').next()?.trim().parse().ok()
}

fn parse_challenge(params: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(c) => (&after[..c], &after[c..]),
                None => (after, ""),
            }
        };
        out.insert(k, v.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_and_range_parsing() {
        let p = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/alpine:pull");
        assert_eq!(content_range_start(Some("bytes 100-199/200")), Some(100));
        assert_eq!(content_range_start(Some("items 1-2")), None);
        assert_eq!(content_range_start(None), None);
    }

    #[test]
    fn pem_splitting() {
        let two = "x\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let b = pem_blocks(two.as_bytes());
        assert_eq!(b.len(), 2);
        assert!(String::from_utf8_lossy(&b[1]).contains("BBB"));
    }
}
