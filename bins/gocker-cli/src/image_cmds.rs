//! The image commands of `gocker`, with docker's names, flags and output: `pull`, `images` /
//! `image ls`, `rmi` / `image rm`, `tag`, `image inspect`, `history`, `image prune`, `save`,
//! `load`. All the work is done by `gocker-storage` (content-addressed store, registry client,
//! safe layer unpacking, OCI layout / docker-archive); this module is the CLI over it.
//!
//! The image store of the calling user ([`store_dir`]) sits beside the rootfs store of
//! `gocker rootfs` (`images.rs`): `/var/lib/gocker/storage` as root, else
//! `$XDG_DATA_HOME/gocker/storage` (default `~/.local/share/gocker/storage`). Layers are unpacked
//! for the caller's mode ([`UnpackOptions::for_current_user`]) when an image is pulled or loaded,
//! so `run IMAGE` finds them ready ([`resolve_for_run`]). See docs/images.md.
//!
//! Exit codes: 0, 1 when an image named on the command line does not exist (docker's
//! `No such image`), 125 for every other gocker error (usage, registry, store).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use gocker_storage::{
    archive, ClientConfig, Digest, ImageRecord, LayerProgress, Reference, RegistryClient, Store,
    UnpackOptions, DEFAULT_REGISTRY,
};
use oci_spec::image::ImageConfiguration;

/// Where the image store is, for every subcommand's `--help`.
pub const STORE_HELP: &str = "Images are kept in the image store of the calling user: \
/var/lib/gocker/storage as root, else $XDG_DATA_HOME/gocker/storage (default \
~/.local/share/gocker/storage), beside the rootfs store of `gocker rootfs`. See docs/images.md.";

/// Seconds to wait for a registry's TCP (and TLS) connection: an unreachable registry fails
/// quickly, naming it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A file in a container's state directory (`StateStore::container_dir`) holding the image id
/// (`sha256:<config>`) the container runs on; written by the `run IMAGE` path, read by `rmi` and
/// `image prune -a` to refuse removing an image in use.
pub const CONTAINER_IMAGE_FILE: &str = "image";

// ---------------------------------------------------------------------------------------------
// Command line

/// The image commands, flattened into gocker's top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommands {
    /// Download an image from a registry into the image store (short names are Docker Hub's:
    /// `alpine` is docker.io/library/alpine:latest).
    #[command(after_help = STORE_HELP)]
    Pull(PullArgs),
    /// List the images in the image store.
    #[command(after_help = STORE_HELP)]
    Images(ImagesArgs),
    /// Remove images: untag each name, and delete the image once no name refers to it.
    #[command(after_help = STORE_HELP)]
    Rmi(RmiArgs),
    /// Give an image another name: TARGET refers to the same image as SOURCE.
    #[command(after_help = STORE_HELP)]
    Tag(TagArgs),
    /// Show the history of an image: how each layer was made.
    #[command(after_help = STORE_HELP)]
    History(HistoryArgs),
    /// Write images to a tar archive (OCI image layout, or docker-archive), to a file or stdout.
    #[command(after_help = STORE_HELP)]
    Save(SaveArgs),
    /// Load images from a tar archive (OCI image layout or docker-archive), from a file or stdin.
    #[command(after_help = STORE_HELP)]
    Load(LoadArgs),
    /// Manage images (ls, inspect, rm, tag, history, prune, pull, save, load).
    #[command(subcommand)]
    Image(ImageCommand),
}

/// `gocker image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the images in the image store.
    #[command(alias = "list", after_help = STORE_HELP)]
    Ls(ImagesArgs),
    /// Show images as a JSON array (docker's fields: Id, RepoTags, RepoDigests, Config, ...).
    #[command(after_help = STORE_HELP)]
    Inspect(InspectArgs),
    /// Remove images: untag each name, and delete the image once no name refers to it.
    #[command(alias = "remove", after_help = STORE_HELP)]
    Rm(RmiArgs),
    /// Give an image another name.
    #[command(after_help = STORE_HELP)]
    Tag(TagArgs),
    /// Show the history of an image.
    #[command(after_help = STORE_HELP)]
    History(HistoryArgs),
    /// Remove what no image needs (blobs, unpacked layers, interrupted downloads); with -a also
    /// every image that no container uses.
    #[command(after_help = STORE_HELP)]
    Prune(PruneArgs),
    /// Download an image from a registry.
    #[command(after_help = STORE_HELP)]
    Pull(PullArgs),
    /// Write images to a tar archive (OCI image layout, or docker-archive).
    #[command(after_help = STORE_HELP)]
    Save(SaveArgs),
    /// Load images from a tar archive (OCI image layout or docker-archive).
    #[command(after_help = STORE_HELP)]
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Check the registry's TLS certificate. `--tls-verify=false` accepts any certificate and
    /// falls back to plain http for this image's registry (registries on 127.0.0.0/8, ::1 and
    /// localhost get that by default, as with docker).
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// The platform to pick from a multi-platform image, OS/ARCH[/VARIANT] (default: this
    /// host's, e.g. linux/amd64).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print only the image's full name.
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show the digests.
    #[arg(long)]
    pub digests: bool,
    /// Do not truncate ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// A Go template as docker's, for each image: fields ID, Repository, Tag, Digest,
    /// CreatedSince, CreatedAt, Size (`{{.Repository}}:{{.Tag}}`); `table ` first: with a
    /// header row; `json`: each image as a JSON line.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only images of this repository (and tag).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove an image referred to by several names when given by id, and an image that a
    /// container uses.
    #[arg(short, long)]
    pub force: bool,
    /// Images by name, name@digest or (a prefix of) the id.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template as docker's, evaluated over each image's JSON (`{{.Id}}`,
    /// `{{json .Config}}`); `json`: each image's JSON on one line.
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Sizes and dates in human-readable form.
    #[arg(short = 'H', long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub human: bool,
    /// Do not truncate the output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Print only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also remove every image that no container uses (not only what no image needs).
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to this file (default: stdout, which must not be a terminal).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// `oci-archive`: an OCI image layout tar, blobs as stored (manifest digests unchanged);
    /// `docker-archive`: `docker save`'s manifest.json with uncompressed layer tars (what
    /// older docker and podman's docker-archive: load).
    #[arg(long, value_name = "FORMAT", default_value = "oci-archive",
          value_parser = ["oci-archive", "docker-archive"])]
    pub format: String,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from this file (default: stdin).
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs an image command; returns the exit code.
pub fn main(c: ImageCommands, debug: bool) -> i32 {
    use ImageCommand as I;
    use ImageCommands as C;
    let (what, r) = match c {
        C::Pull(a) | C::Image(I::Pull(a)) => ("pull", pull(&a, debug)),
        C::Images(a) | C::Image(I::Ls(a)) => ("images", images(&a)),
        C::Rmi(a) | C::Image(I::Rm(a)) => ("rmi", rmi(&a)),
        C::Tag(a) | C::Image(I::Tag(a)) => ("tag", tag(&a)),
        C::History(a) | C::Image(I::History(a)) => ("history", history(&a)),
        C::Save(a) | C::Image(I::Save(a)) => ("save", save(&a)),
        C::Load(a) | C::Image(I::Load(a)) => ("load", load(&a)),
        C::Image(I::Inspect(a)) => ("image inspect", inspect(&a)),
        C::Image(I::Prune(a)) => ("image prune", prune(&a)),
    };
    match r {
        Ok(code) => code,
        Err(e) => report(what, &e, debug),
    }
}

fn report(what: &str, e: &anyhow::Error, debug: bool) -> i32 {
    if crate::failure::is_broken_pipe(e) {
        return crate::failure::BROKEN_PIPE_EXIT;
    }
    if let Some(n) = e.downcast_ref::<NoSuchImage>() {
        eprintln!("Error: {n}");
        return 1;
    }
    let msg = if debug {
        format!("{e:?}")
    } else {
        format!("{e:#}")
    };
    // Pull and load errors already start with what failed ("pull alpine:latest: ...").
    if msg.starts_with(what) {
        eprintln!("gocker: {msg}");
    } else {
        eprintln!("gocker: {what}: {msg}");
    }
    125
}

/// docker's "No such image: NAME" (exit status 1).
#[derive(Debug)]
pub struct NoSuchImage(pub String);

impl fmt::Display for NoSuchImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "No such image: {}", self.0)
    }
}

impl std::error::Error for NoSuchImage {}

// ---------------------------------------------------------------------------------------------
// The store and names

/// The image store of the calling user: beside the rootfs store (`gocker rootfs`).
pub fn store_dir() -> PathBuf {
    crate::host::data_dir().join("storage")
}

/// Opens (creating) the store, private to its owner: unpacked layers keep their set-id files
/// and owners, which no other user should reach (docker's /var/lib/docker is 0710, podman's
/// storage 0700).
fn open_store() -> Result<Store> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = store_dir();
    let store = Store::open(&d).with_context(|| format!("open the image store {}", d.display()))?;
    if let Ok(md) = fs::metadata(&d) {
        if md.mode() & 0o077 != 0 && md.uid() == rustix::process::geteuid().as_raw() {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("chmod 0700 {}", d.display()))?;
        }
    }
    Ok(store)
}

fn parse_ref(input: &str) -> Result<Reference> {
    Reference::parse(input).map_err(|e| anyhow!("invalid reference format: {e}"))
}

/// The repository as docker shows it: `alpine` for docker.io/library/alpine, `user/app` for
/// docker.io/user/app, `host:port/path` otherwise.
fn familiar_repo(r: &Reference) -> String {
    if r.registry() == DEFAULT_REGISTRY {
        match r.repository().strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => r.repository().to_string(),
        }
    } else {
        format!("{}/{}", r.registry(), r.repository())
    }
}

/// The reference as docker shows it (`alpine:latest`, `host:5000/app@sha256:…`).
fn familiar(r: &Reference) -> String {
    let mut s = familiar_repo(r);
    if let Some(t) = r.tag() {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = r.digest() {
        s.push('@');
        s.push_str(&d.to_string());
    }
    s
}

/// How an unknown name is echoed in "No such image": normalised like docker (`x` → `x:latest`).
fn shown_name(input: &str) -> String {
    Reference::parse(input)
        .map(|r| familiar(&r))
        .unwrap_or_else(|_| input.to_string())
}

/// One reference in the store, with what `images` needs.
#[derive(Clone, Debug)]
struct Entry {
    reference: Reference,
    record: ImageRecord,
    config: Digest,
    size: u64,
}

fn entries(store: &Store) -> Result<Vec<Entry>> {
    let records: BTreeMap<String, ImageRecord> = store
        .refs()
        .context("read the image references")?
        .into_iter()
        .map(|(r, rec)| (r.to_string(), rec))
        .collect();
    let mut out = Vec::new();
    for s in store.list_images().context("list the images")? {
        let Some(record) = records.get(&s.reference) else {
            continue;
        };
        out.push(Entry {
            reference: parse_ref(&s.reference)?,
            record: record.clone(),
            config: s.config,
            size: s.size,
        });
    }
    Ok(out)
}

/// What a name on the command line designates.
#[derive(Clone, Debug)]
enum Target {
    /// Exactly this reference.
    Name(Reference),
    /// An image (by id or by a digest of its repository): every reference to it.
    Id {
        config: Digest,
        refs: Vec<Reference>,
    },
}

fn find(all: &[Entry], input: &str) -> Result<Target> {
    if let Ok(r) = Reference::parse(input) {
        let s = r.to_string();
        if all.iter().any(|e| e.reference.to_string() == s) {
            return Ok(Target::Name(r));
        }
        // repo@digest of an image pulled by tag: docker finds it through its repo digests.
        if let Some(d) = r.digest() {
            let same_repo = |e: &&Entry| {
                e.reference.registry() == r.registry()
                    && e.reference.repository() == r.repository()
                    && (&e.record.manifest == d || e.record.index.as_ref() == Some(d))
            };
            let configs: BTreeSet<&Digest> =
                all.iter().filter(same_repo).map(|e| &e.config).collect();
            if let [config] = configs.into_iter().collect::<Vec<_>>()[..] {
                return Ok(by_id(all, config));
            }
        }
    }
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    if !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        let configs: BTreeSet<&Digest> = all
            .iter()
            .map(|e| &e.config)
            .filter(|c| c.hex().starts_with(hex))
            .collect();
        match configs.into_iter().collect::<Vec<_>>()[..] {
            [] => {}
            [config] => return Ok(by_id(all, config)),
            ref many => bail!(
                "image id prefix {input} is ambiguous: it matches {}",
                many.iter()
                    .map(|c| short_id(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Err(NoSuchImage(shown_name(input)).into())
}

fn by_id(all: &[Entry], config: &Digest) -> Target {
    Target::Id {
        config: config.clone(),
        refs: all
            .iter()
            .filter(|e| &e.config == config)
            .map(|e| e.reference.clone())
            .collect(),
    }
}

impl Target {
    fn config(&self, all: &[Entry]) -> Digest {
        match self {
            Target::Id { config, .. } => config.clone(),
            Target::Name(r) => all
                .iter()
                .find(|e| &e.reference == r)
                .map(|e| e.config.clone())
                .expect("found names are in the list"),
        }
    }
    /// A reference that resolves to the image.
    fn any_ref(&self) -> &Reference {
        match self {
            Target::Name(r) => r,
            Target::Id { refs, .. } => &refs[0],
        }
    }
}

fn short_id(config: &Digest) -> String {
    config.hex()[..12].to_string()
}

fn shown_id(config: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        config.to_string()
    } else {
        short_id(config)
    }
}

// ---------------------------------------------------------------------------------------------
// pull

/// Where pull progress goes: `gocker pull` writes to stdout (like docker), `run IMAGE` to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    Stdout,
    Stderr,
}

impl Out {
    fn is_terminal(self) -> bool {
        match self {
            Out::Stdout => io::stdout().is_terminal(),
            Out::Stderr => io::stderr().is_terminal(),
        }
    }
    fn write(self, s: &str) {
        let r = match self {
            Out::Stdout => {
                let mut o = io::stdout().lock();
                o.write_all(s.as_bytes()).and_then(|()| o.flush())
            }
            Out::Stderr => io::stderr().lock().write_all(s.as_bytes()),
        };
        crate::failure::wrote(r);
    }
}

struct Line {
    id: String,
    text: String,
    done: bool,
}

struct ViewState {
    lines: Vec<Line>,
    drawn: usize,
    last_draw: Option<Instant>,
}

/// Pull progress: a bar per layer on a terminal (redrawn at most every 100 ms, and when a layer
/// changes state), docker's plain lines otherwise.
struct PullView {
    out: Out,
    tty: bool,
    quiet: bool,
    st: Mutex<ViewState>,
}

fn bar(done: u64, total: u64) -> String {
    const W: u64 = 50;
    let n = (done.min(total) * W).checked_div(total).unwrap_or(W);
    let mut s = String::with_capacity(W as usize + 2);
    s.push('[');
    for i in 0..W {
        s.push(match i.cmp(&n.saturating_sub(1)) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal if n > 0 => '>',
            _ => ' ',
        });
    }
    s.push(']');
    s
}

impl PullView {
    fn new(out: Out, quiet: bool) -> Self {
        PullView {
            out,
            tty: !quiet && out.is_terminal(),
            quiet,
            st: Mutex::new(ViewState {
                lines: Vec::new(),
                drawn: 0,
                last_draw: None,
            }),
        }
    }

    fn say(&self, s: &str) {
        if !self.quiet {
            self.out.write(&format!("{s}\n"));
        }
    }

    fn redraw(&self, st: &mut ViewState) {
        let mut s = String::new();
        if st.drawn > 0 {
            s.push_str(&format!("\x1b[{}A", st.drawn));
        }
        for l in &st.lines {
            s.push_str(&format!("\r\x1b[2K{}: {}\n", l.id, l.text));
        }
        st.drawn = st.lines.len();
        st.last_draw = Some(Instant::now());
        self.out.write(&s);
    }

    /// A layer changed state: plain mode prints `ID: text`; a terminal redraws.
    fn set(&self, id: &str, text: String, state_change: bool, done: bool) {
        if self.quiet {
            return;
        }
        let mut st = self.st.lock().unwrap_or_else(|p| p.into_inner());
        let i = match st.lines.iter().position(|l| l.id == id) {
            Some(i) => i,
            None => {
                st.lines.push(Line {
                    id: id.to_string(),
                    text: String::new(),
                    done: false,
                });
                st.lines.len() - 1
            }
        };
        st.lines[i].text = text.clone();
        st.lines[i].done |= done;
        if self.tty {
            let due = st
                .last_draw
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
            if state_change || due {
                self.redraw(&mut st);
            }
        } else if state_change {
            self.out.write(&format!("{id}: {text}\n"));
        }
    }

    fn event(&self, p: &LayerProgress) {
        if self.quiet {
            return;
        }
        let id = short_id(&p.blob);
        let known = {
            let st = self.st.lock().unwrap_or_else(|e| e.into_inner());
            st.lines.iter().find(|l| l.id == id).map(|l| l.done)
        };
        if known == Some(true) {
            return;
        }
        if p.reused {
            self.set(&id, "Already exists".into(), true, true);
            return;
        }
        if known.is_none() {
            self.set(&id, "Pulling fs layer".into(), true, false);
            if p.resumed_from > 0 {
                self.set(
                    &id,
                    format!(
                        "Resuming download ({} of {} already downloaded)",
                        human_size(p.resumed_from),
                        human_size(p.total)
                    ),
                    true,
                    false,
                );
            }
        }
        if p.done {
            self.set(&id, "Download complete".into(), true, false);
        } else if self.tty {
            self.set(
                &id,
                format!(
                    "Downloading  {}  {}/{}",
                    bar(p.downloaded, p.total),
                    human_size(p.downloaded),
                    human_size(p.total)
                ),
                false,
                false,
            );
        }
    }

    /// A status shown only on a terminal (docker prints no "Extracting" lines elsewhere).
    fn tty_status(&self, id: &str, text: &str) {
        if self.tty {
            self.set(id, text.to_string(), true, false);
        }
    }

    fn finish(&self) {
        if self.tty {
            let mut st = self.st.lock().unwrap_or_else(|p| p.into_inner());
            self.redraw(&mut st);
        }
    }
}

fn parse_platform(p: &str) -> Result<(String, String, Option<String>)> {
    let parts: Vec<&str> = p.split('/').collect();
    let bad = || {
        anyhow!("--platform {p:?}: expected OS/ARCH[/VARIANT] (e.g. linux/amd64, linux/arm64/v8)")
    };
    if parts.iter().any(|s| s.is_empty()) {
        return Err(bad());
    }
    match parts[..] {
        [os, arch] => Ok((os.into(), arch.into(), None)),
        [os, arch, v] => Ok((os.into(), arch.into(), Some(v.into()))),
        _ => Err(bad()),
    }
}

/// Registries that docker reaches without TLS checks by default: 127.0.0.0/8, ::1, localhost.
fn is_loopback_registry(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => registry.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What a pull did.
#[derive(Debug)]
pub struct PullOutcome {
    pub reference: Reference,
    /// docker's "Digest:" (the index's when the image came from one, else the manifest's).
    pub digest: Digest,
    pub config: Digest,
    pub bytes_fetched: u64,
    pub bytes_resumed: u64,
    pub layers_reused: usize,
    pub seconds: f64,
}

/// Pull `name` into the user's store and unpack its layers, printing docker's progress to `out`.
pub fn pull_image(
    name: &str,
    tls_verify: bool,
    platform: Option<&str>,
    out: Out,
    quiet: bool,
) -> Result<PullOutcome> {
    let start = Instant::now();
    let reference = parse_ref(name)?;
    let image = familiar(&reference);
    let store = open_store()?;
    let mut cfg = ClientConfig {
        connect_timeout: CONNECT_TIMEOUT,
        ..ClientConfig::default()
    };
    if !tls_verify || is_loopback_registry(reference.registry()) {
        cfg.insecure_registries
            .push(reference.registry().to_string());
    }
    if let Some(p) = platform {
        cfg.platform = parse_platform(p)?;
    }
    let before = store.resolve(&reference).ok();
    let view = PullView::new(out, quiet);
    let last = name.rsplit('/').next().unwrap_or(name);
    if !last.contains(':') && !last.contains('@') {
        view.say(&format!(
            "Using default tag: {}",
            gocker_storage::DEFAULT_TAG
        ));
    }
    view.say(&format!(
        "{}: Pulling from {}",
        reference.manifest_selector(),
        reference.repository()
    ));
    let progress = |p: &LayerProgress| {
        view.event(p);
        Ok(())
    };
    let client = RegistryClient::new(cfg);
    let pulled = client.pull(&store, &reference, Some(&progress));
    let pulled = match pulled {
        Ok(p) => p,
        Err(e) => {
            view.finish();
            return Err(anyhow!(e).context(format!("pull {image}")));
        }
    };
    // Unpack for the caller's mode; a layer that cannot be unpacked (hostile, truncated) takes
    // the image out of the list again.
    if let Err(e) = unpack_with_view(&store, &reference, &view) {
        view.finish();
        let _ = match &before {
            Some(rec) => store.set_ref(&reference, rec.clone()),
            None => store.remove_ref(&reference).map(|_| ()),
        };
        return Err(e.context(format!("pull {image}")));
    }
    view.finish();
    let digest = pulled
        .record
        .index
        .clone()
        .unwrap_or_else(|| pulled.record.manifest.clone());
    view.say(&format!("Digest: {digest}"));
    if before.as_ref() == Some(&pulled.record) {
        view.say(&format!("Status: Image is up to date for {image}"));
    } else {
        view.say(&format!("Status: Downloaded newer image for {image}"));
    }
    Ok(PullOutcome {
        reference,
        digest,
        config: pulled.config,
        bytes_fetched: pulled.bytes_fetched,
        bytes_resumed: pulled.bytes_resumed,
        layers_reused: pulled.layers_reused,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Unpack every layer of `reference` not yet unpacked, saying "Pull complete" for each.
fn unpack_with_view(store: &Store, reference: &Reference, view: &PullView) -> Result<Vec<PathBuf>> {
    let _lock = store.lock_shared()?;
    let img = store.image(reference)?;
    let image = reference.to_string();
    let diff_ids = img.config.rootfs().diff_ids();
    if diff_ids.len() != img.manifest.layers().len() {
        bail!(
            "image {image}: config {} has {} diff_ids for {} layers",
            img.config_digest()?,
            diff_ids.len(),
            img.manifest.layers().len()
        );
    }
    let opts = UnpackOptions::for_current_user();
    let mut dirs = Vec::new();
    for (layer, diff_id) in img.manifest.layers().iter().zip(diff_ids) {
        let blob = Digest::from_oci(layer.digest())?;
        let diff_id = Digest::parse(diff_id)?;
        if !store.layer_dir(&diff_id).is_dir() {
            view.tty_status(&short_id(&blob), "Extracting");
        }
        let report =
            store.unpack_blob(&image, &blob, layer.media_type().as_ref(), &diff_id, &opts)?;
        if let Some(r) = report {
            view.set(&short_id(&blob), "Pull complete".into(), true, true);
            for n in &r.notes {
                tracing::debug!("layer {blob}: {n}");
            }
        }
        dirs.push(store.layer_dir(&diff_id));
    }
    Ok(dirs)
}

fn pull(a: &PullArgs, debug: bool) -> Result<i32> {
    let o = pull_image(
        &a.name,
        a.tls_verify,
        a.platform.as_deref(),
        Out::Stdout,
        a.quiet,
    )?;
    Out::Stdout.write(&format!("{}\n", o.reference));
    let name = o.reference.to_string();
    gocker_runtime::state::record_event(
        gocker_runtime::events::Kind::Image,
        "pull",
        &name,
        &[("name", &name)],
    );
    if debug {
        eprintln!(
            "gocker: pull {}: digest={} id={} bytes_fetched={} bytes_resumed={} layers_reused={} seconds={:.3} store={}",
            o.reference,
            o.digest,
            o.config,
            o.bytes_fetched,
            o.bytes_resumed,
            o.layers_reused,
            o.seconds,
            store_dir().display()
        );
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// run IMAGE support

/// For `gocker run IMAGE`: the image's unpacked layer directories, lowest first (reverse them
/// for overlayfs `lowerdir=`), and its config (Entrypoint, Cmd, Env, WorkingDir, User, ...).
/// Layers not yet unpacked (e.g. loaded by an older gocker) are unpacked now. An image not in
/// the store is a [`NoSuchImage`] error: call [`pull_image`] (with [`Out::Stderr`]) and retry,
/// as docker's "Unable to find image 'X' locally" does.
#[allow(dead_code)] // the run path (copy-on-write roots) calls it: see docs/images.md
pub fn resolve_for_run(name: &str) -> Result<(Vec<PathBuf>, ImageConfiguration)> {
    let store = open_store()?;
    let all = entries(&store)?;
    let target = find(&all, name)?;
    let reference = target.any_ref().clone();
    let view = PullView::new(Out::Stderr, true);
    let dirs = unpack_with_view(&store, &reference, &view)
        .with_context(|| format!("unpack image {}", familiar(&reference)))?;
    let img = store.image(&reference)?;
    Ok((dirs, img.config))
}

/// docker's `config.Healthcheck` of image `name` (a field the OCI image configuration does not
/// have, so it is read from the config blob itself); `None` when the image has none.
pub fn image_healthcheck(name: &str) -> Option<serde_json::Value> {
    let store = open_store().ok()?;
    let all = entries(&store).ok()?;
    let reference = find(&all, name).ok()?.any_ref().clone();
    let img = store.image(&reference).ok()?;
    let blob = std::fs::read(store.blob_path(&img.config_digest().ok()?)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&blob).ok()?;
    let h = v.get("config")?.get("Healthcheck")?;
    (!h.is_null()).then(|| h.clone())
}

/// The image id (`sha256:<config>`) of `name`, to record in the container's state directory as
/// [`CONTAINER_IMAGE_FILE`].
#[allow(dead_code)] // the run path calls it: see docs/images.md
pub fn image_id(name: &str) -> Result<String> {
    let store = open_store()?;
    let all = entries(&store)?;
    Ok(find(&all, name)?.config(&all).to_string())
}

/// Containers (names) that use the image `config` with layer dirs `layers`: those whose state
/// directory records it ([`CONTAINER_IMAGE_FILE`]) or whose rootfs is one of its layer dirs.
fn containers_using(config: &Digest, layers: &[PathBuf]) -> Vec<String> {
    use gocker_runtime::StateStore;
    let Ok(st) = StateStore::open(StateStore::default_root()) else {
        return Vec::new();
    };
    let Ok(list) = st.list() else {
        return Vec::new();
    };
    let want = config.to_string();
    list.into_iter()
        .filter(|c| {
            let dir = st.container_dir(&c.id);
            let recorded = fs::read_to_string(dir.join(CONTAINER_IMAGE_FILE))
                .is_ok_and(|s| s.trim() == want)
                || fs::read(dir.join("config.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some_and(|spec| {
                        spec["annotations"][crate::names::IMAGE_ANNOTATION] == want.as_str()
                    });
            recorded || layers.iter().any(|l| c.rootfs.starts_with(l))
        })
        .map(|c| c.name)
        .collect()
}

fn layer_dirs_of(store: &Store, r: &Reference) -> Vec<PathBuf> {
    store
        .image(r)
        .map(|img| {
            img.config
                .rootfs()
                .diff_ids()
                .iter()
                .filter_map(|d| Digest::parse(d).ok())
                .map(|d| store.layer_dir(&d))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// images

/// docker's sizes (go-units HumanSizeWithPrecision(size, 3)): SI units, 3 significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as i32 + 1
    };
    let decimals = (3 - digits).max(0) as usize;
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

/// Seconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.678Z`, `+01:00`).
fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// docker's "N units ago" (go-units HumanDuration).
fn human_ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(parse_rfc3339) else {
        return "N/A".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let secs = (now - t).max(0);
    let minutes = secs / 60;
    let hours = (secs as f64 / 3600.0 + 0.5) as i64;
    let d = if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".to_string()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    };
    format!("{d} ago")
}

/// Columns like docker's tabwriter (minimum width 10, padding 3; the last column unpadded): the
/// CLI's shared table layout.
fn table(rows: &[Vec<String>]) -> String {
    crate::table::render(rows)
}

fn images(a: &ImagesArgs) -> Result<i32> {
    let format = crate::format::Format::parse(a.format.as_deref())?;
    let store = open_store()?;
    let mut all = entries(&store)?;
    if let Some(f) = &a.repository {
        let (repo, tag) = match f.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (f.clone(), None),
        };
        all.retain(|e| {
            let full = format!("{}/{}", e.reference.registry(), e.reference.repository());
            (familiar_repo(&e.reference) == repo || full == repo)
                && tag.as_deref().is_none_or(|t| e.reference.tag() == Some(t))
        });
    }
    // Newest first, like docker; then by name.
    let mut rows: Vec<(Option<i64>, Entry, Option<String>)> = all
        .into_iter()
        .map(|e| {
            let created = store
                .image(&e.reference)
                .ok()
                .and_then(|i| i.config.created().clone());
            (created.as_deref().and_then(parse_rfc3339), e, created)
        })
        .collect();
    rows.sort_by(|x, y| {
        y.0.cmp(&x.0)
            .then_with(|| familiar(&x.1.reference).cmp(&familiar(&y.1.reference)))
    });
    if a.quiet {
        let mut seen = BTreeSet::new();
        for (_, e, _) in &rows {
            if seen.insert(e.config.clone()) {
                println!("{}", shown_id(&e.config, a.no_trunc));
            }
        }
        return Ok(0);
    }
    if !format.is_default() {
        let objs: Vec<serde_json::Value> = rows
            .iter()
            .map(|(_, e, created)| {
                let digest = e
                    .reference
                    .digest()
                    .map_or_else(|| "<none>".to_owned(), |d| d.to_string());
                serde_json::json!({
                    "ID": shown_id(&e.config, a.no_trunc),
                    "Repository": familiar_repo(&e.reference),
                    "Tag": e.reference.tag().unwrap_or("<none>"),
                    "Digest": digest,
                    "CreatedSince": human_ago(created.as_deref()),
                    "CreatedAt": created
                        .as_deref()
                        .and_then(parse_rfc3339)
                        .map(crate::format::go_time_string)
                        .unwrap_or_default(),
                    "Size": human_size(e.size),
                })
            })
            .collect();
        let header = [
            ("ID", "IMAGE ID"),
            ("Repository", "REPOSITORY"),
            ("Tag", "TAG"),
            ("Digest", "DIGEST"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("Size", "SIZE"),
        ];
        print!("{}", format.render(&objs, &header)?.unwrap_or_default());
        return Ok(0);
    }
    let mut t = vec![{
        let mut h = vec!["REPOSITORY".to_string(), "TAG".to_string()];
        if a.digests {
            h.push("DIGEST".into());
        }
        h.extend(["IMAGE ID", "CREATED", "SIZE"].map(String::from));
        h
    }];
    for (_, e, created) in &rows {
        let mut r = vec![
            familiar_repo(&e.reference),
            e.reference.tag().unwrap_or("<none>").to_string(),
        ];
        if a.digests {
            let d = e
                .reference
                .digest()
                .cloned()
                .or_else(|| e.record.index.clone())
                .unwrap_or_else(|| e.record.manifest.clone());
            r.push(d.to_string());
        }
        r.push(shown_id(&e.config, a.no_trunc));
        r.push(human_ago(created.as_deref()));
        r.push(human_size(e.size));
        t.push(r);
    }
    print!("{}", table(&t));
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// rmi, tag, prune

fn rmi(a: &RmiArgs) -> Result<i32> {
    let store = open_store()?;
    let mut code = 0;
    let mut removed_any = false;
    for input in &a.images {
        match rmi_one(&store, input, a.force) {
            Ok(()) => removed_any = true,
            Err(e) => {
                code = code.max(report("rmi", &e, false));
            }
        }
    }
    if removed_any {
        store
            .gc()
            .context("remove the blobs and layers no image needs")?;
    }
    Ok(code)
}

fn rmi_one(store: &Store, input: &str, force: bool) -> Result<()> {
    let all = entries(store)?;
    let target = find(&all, input)?;
    let config = target.config(&all);
    let refs = match &target {
        Target::Name(r) => vec![r.clone()],
        Target::Id { refs, .. } => {
            if refs.len() > 1 && !force {
                bail!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories ({})",
                    short_id(&config),
                    refs.iter().map(familiar).collect::<Vec<_>>().join(", ")
                );
            }
            refs.clone()
        }
    };
    let remaining = all
        .iter()
        .filter(|e| e.config == config && !refs.contains(&e.reference))
        .count();
    if remaining == 0 {
        let users = containers_using(&config, &layer_dirs_of(store, target.any_ref()));
        if !users.is_empty() && !force {
            bail!(
                "conflict: unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                input,
                users.join(", "),
                short_id(&config)
            );
        }
    }
    for r in &refs {
        store
            .remove_ref(r)
            .with_context(|| format!("untag {}", familiar(r)))?;
        println!("Untagged: {}", familiar(r));
        let name = familiar(r);
        gocker_runtime::state::record_event(
            gocker_runtime::events::Kind::Image,
            "untag",
            &config.to_string(),
            &[("name", &name)],
        );
    }
    if remaining == 0 {
        println!("Deleted: {config}");
        gocker_runtime::state::record_event(
            gocker_runtime::events::Kind::Image,
            "delete",
            &config.to_string(),
            &[],
        );
    }
    Ok(())
}

fn tag(a: &TagArgs) -> Result<i32> {
    let store = open_store()?;
    let all = entries(&store)?;
    let target = find(&all, &a.source)?;
    let src = target.any_ref().clone();
    let record = store.resolve(&src)?;
    let dst = parse_ref(&a.target)?;
    if dst.digest().is_some() {
        bail!(
            "refusing to create a tag with a digest reference: {}",
            a.target
        );
    }
    store
        .set_ref(&dst, record)
        .with_context(|| format!("tag {} as {}", familiar(&src), familiar(&dst)))?;
    let name = familiar(&dst);
    gocker_runtime::state::record_event(
        gocker_runtime::events::Kind::Image,
        "tag",
        &target.config(&all).to_string(),
        &[("name", &name)],
    );
    Ok(0)
}

fn dir_size(p: &Path) -> u64 {
    fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn prune(a: &PruneArgs) -> Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !crate::failure::confirmed(warning) {
        eprintln!("image prune cancelled: nothing removed");
        return Ok(0);
    }
    let store = open_store()?;
    let mut lines = Vec::new();
    if a.all {
        let all = entries(&store)?;
        let configs: BTreeSet<Digest> = all.iter().map(|e| e.config.clone()).collect();
        for config in configs {
            let refs: Vec<&Entry> = all.iter().filter(|e| e.config == config).collect();
            let used = containers_using(&config, &layer_dirs_of(&store, &refs[0].reference));
            if !used.is_empty() {
                continue;
            }
            for e in refs {
                store.remove_ref(&e.reference)?;
                lines.push(format!("untagged: {}", familiar(&e.reference)));
            }
            lines.push(format!("deleted: {config}"));
        }
    }
    let report = store
        .gc()
        .context("remove the blobs and layers no image needs")?;
    // Interrupted downloads too (with the store locked: no pull is running).
    let partial_dir = store.root().join("tmp/partial");
    let mut freed = report.bytes_freed;
    {
        let _l = store.lock_exclusive()?;
        freed += dir_size(&partial_dir);
        if let Ok(rd) = fs::read_dir(&partial_dir) {
            for e in rd.flatten() {
                fs::remove_file(e.path())
                    .with_context(|| format!("remove {}", e.path().display()))?;
            }
        }
    }
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in &lines {
            println!("{l}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(freed));
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// inspect, history

fn inspect_json(store: &Store, all: &[Entry], target: &Target) -> Result<serde_json::Value> {
    use serde_json::{json, Value};
    let config = target.config(all);
    let refs: Vec<&Entry> = all.iter().filter(|e| e.config == config).collect();
    let img = store.image(target.any_ref())?;
    let mut tags = Vec::new();
    let mut digests = BTreeSet::new();
    for e in &refs {
        let repo = familiar_repo(&e.reference);
        if e.reference.tag().is_some() && e.reference.digest().is_none() {
            tags.push(familiar(&e.reference));
        }
        let d = e
            .reference
            .digest()
            .cloned()
            .or_else(|| e.record.index.clone())
            .unwrap_or_else(|| e.record.manifest.clone());
        digests.insert(format!("{repo}@{d}"));
    }
    let c = img.config.config().clone().unwrap_or_default();
    let c = serde_json::to_value(&c).unwrap_or(Value::Null);
    let field = |k: &str, default: Value| c.get(k).cloned().unwrap_or(default);
    let dirs = layer_dirs_of(store, target.any_ref());
    let lower: Vec<String> = dirs.iter().rev().map(|p| p.display().to_string()).collect();
    Ok(json!({
        "Id": config.to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": "",
        "Created": img.config.created().clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "Author": img.config.author().clone().unwrap_or_default(),
        "Config": {
            "User": field("User", json!("")),
            "ExposedPorts": field("ExposedPorts", Value::Null),
            "Env": field("Env", Value::Null),
            "Cmd": field("Cmd", Value::Null),
            "Volumes": field("Volumes", Value::Null),
            "WorkingDir": field("WorkingDir", json!("")),
            "Entrypoint": field("Entrypoint", Value::Null),
            "Labels": field("Labels", Value::Null),
            "StopSignal": field("StopSignal", Value::Null),
        },
        "Architecture": img.config.architecture().to_string(),
        "Variant": img.config.variant().clone(),
        "Os": img.config.os().to_string(),
        "Size": refs[0].size,
        "GraphDriver": {
            "Name": "overlay",
            "Data": { "LowerDir": lower.join(":") },
        },
        "RootFS": {
            "Type": img.config.rootfs().typ(),
            "Layers": img.config.rootfs().diff_ids(),
        },
        "Metadata": { "Manifest": img.record.manifest.to_string(), "MediaType": img.record.media_type },
    }))
}

fn inspect(a: &InspectArgs) -> Result<i32> {
    let format = crate::format::Format::parse(a.format.as_deref())?;
    let store = open_store()?;
    let all = entries(&store)?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for i in &a.images {
        match find(&all, i) {
            Ok(t) => out.push(inspect_json(&store, &all, &t)?),
            Err(e) if e.is::<NoSuchImage>() => missing.push(e),
            Err(e) => return Err(e),
        }
    }
    match format.render(&out, &[])? {
        Some(text) => print!("{text}"),
        None => println!(
            "{}",
            serde_json::to_string_pretty(&out).context("encode JSON")?
        ),
    }
    for e in &missing {
        eprintln!("Error: {e}");
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}

fn history(a: &HistoryArgs) -> Result<i32> {
    let store = open_store()?;
    let all = entries(&store)?;
    let target = find(&all, &a.image)?;
    let config = target.config(&all);
    let img = store.image(target.any_ref())?;
    let layer_sizes: Vec<u64> = img.manifest.layers().iter().map(|l| l.size()).collect();
    // (created, created_by, size, comment), oldest first.
    let mut rows: Vec<(Option<String>, String, u64, String)> = Vec::new();
    match img.config.history() {
        Some(h) if !h.is_empty() => {
            let mut li = 0;
            for e in h {
                let size = if e.empty_layer().unwrap_or(false) {
                    0
                } else {
                    li += 1;
                    layer_sizes.get(li - 1).copied().unwrap_or(0)
                };
                rows.push((
                    e.created().clone(),
                    e.created_by().clone().unwrap_or_default(),
                    size,
                    e.comment().clone().unwrap_or_default(),
                ));
            }
        }
        _ => {
            for s in &layer_sizes {
                rows.push((
                    img.config.created().clone(),
                    String::new(),
                    *s,
                    String::new(),
                ));
            }
        }
    }
    rows.reverse();
    if a.quiet {
        for (i, _) in rows.iter().enumerate() {
            println!(
                "{}",
                if i == 0 {
                    shown_id(&config, a.no_trunc)
                } else {
                    "<missing>".into()
                }
            );
        }
        return Ok(0);
    }
    let mut t = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
        .map(String::from)
        .to_vec()];
    for (i, (created, by, size, comment)) in rows.into_iter().enumerate() {
        let by = by.replace(['\n', '\t'], " ");
        let by = if a.no_trunc || by.chars().count() <= 45 {
            by
        } else {
            by.chars().take(44).collect::<String>() + "…"
        };
        t.push(vec![
            if i == 0 {
                shown_id(&config, a.no_trunc)
            } else {
                "<missing>".into()
            },
            if a.human {
                human_ago(created.as_deref())
            } else {
                created.unwrap_or_else(|| "N/A".into())
            },
            by,
            if a.human {
                human_size(size)
            } else {
                size.to_string()
            },
            comment,
        ]);
    }
    print!("{}", table(&t));
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// save, load

fn save(a: &SaveArgs) -> Result<i32> {
    let store = open_store()?;
    let all = entries(&store)?;
    let mut refs: Vec<Reference> = Vec::new();
    for i in &a.images {
        match find(&all, i)? {
            Target::Name(r) => refs.push(r),
            Target::Id { refs: rs, .. } => refs.extend(rs),
        }
    }
    refs.dedup();
    match &a.output {
        Some(path) => {
            // Beside the destination, renamed into place: no half-written archive on failure.
            let name = path
                .file_name()
                .with_context(|| format!("-o {}: not a file name", path.display()))?;
            let tmp = path.with_file_name(format!(
                ".{}.gocker-save-{}",
                name.to_string_lossy(),
                std::process::id()
            ));
            let f = fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let r = write_archive(&store, &refs, &a.format, io::BufWriter::new(f), path).and_then(
                |()| {
                    fs::rename(&tmp, path)
                        .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
                },
            );
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            r?;
        }
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let out = io::stdout().lock();
            write_archive(
                &store,
                &refs,
                &a.format,
                io::BufWriter::new(out),
                Path::new("<stdout>"),
            )?;
        }
    }
    Ok(0)
}

fn write_archive(
    store: &Store,
    refs: &[Reference],
    format: &str,
    out: impl Write,
    dest: &Path,
) -> Result<()> {
    if format == "docker-archive" {
        return save_docker_archive(store, refs, out, dest);
    }
    archive::save_oci_tar(store, refs, out, dest).map_err(anyhow::Error::from)
}

/// A temporary file in the store, removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A layer blob decompressed (gzip, zstd or plain, from its magic bytes) into a temp file of
/// the store, checked against its diff_id. Returns the file and its size.
fn uncompressed_layer(
    store: &Store,
    image: &str,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<(TempFile, u64)> {
    use sha2::Digest as _;
    let path = store.blob_path(blob);
    let mut f = io::BufReader::new(
        fs::File::open(&path)
            .with_context(|| format!("layer {blob} of image {image}: open {}", path.display()))?,
    );
    let magic = f
        .fill_buf()
        .with_context(|| format!("read {}", path.display()))?
        .to_vec();
    let mut r: Box<dyn io::Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(f))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(f)
                .with_context(|| format!("layer {blob} of image {image}: zstd"))?,
        )
    } else {
        Box::new(f)
    };
    let tmp = TempFile(store.root().join("tmp").join(format!(
        "save-{}-{}",
        std::process::id(),
        diff_id.hex()
    )));
    let mut w = fs::File::create(&tmp.0).with_context(|| format!("create {}", tmp.0.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => bail!("layer {blob} of image {image}: decompress: {e}"),
        };
        h.update(&buf[..k]);
        w.write_all(&buf[..k])
            .with_context(|| format!("write {}", tmp.0.display()))?;
        n += k as u64;
    }
    let actual = format!("sha256:{:x}", h.finalize());
    if actual != diff_id.to_string() {
        bail!(
            "layer {blob} of image {image}: uncompressed it is {actual}, the config says {diff_id}"
        );
    }
    Ok((tmp, n))
}

/// `docker save`'s format: `manifest.json` ([{Config, RepoTags, Layers}]), `<config hex>.json`,
/// `<diff_id hex>/layer.tar` (uncompressed), and the legacy `repositories` file.
fn save_docker_archive(
    store: &Store,
    refs: &[Reference],
    out: impl Write,
    dest: &Path,
) -> Result<()> {
    let _lock = store.lock_shared()?;
    let mut tb = tar::Builder::new(out);
    fn add<W: Write>(
        tb: &mut tar::Builder<W>,
        dest: &Path,
        path: &str,
        size: u64,
        r: &mut dyn io::Read,
    ) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        tb.append_data(&mut h, path, r)
            .with_context(|| format!("write {path} to {}", dest.display()))
    }
    // One manifest.json entry per image (config), with all its names.
    let mut images: Vec<(Digest, Reference, Vec<String>)> = Vec::new();
    for r in refs {
        let cd = store.image(r)?.config_digest()?;
        let tag = r.tag().map(|_| familiar(r));
        match images.iter_mut().find(|i| i.0 == cd) {
            Some(i) => i.2.extend(tag),
            None => images.push((cd, r.clone(), tag.into_iter().collect())),
        }
    }
    let mut written = BTreeSet::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (cd, r, tags) in &images {
        let image = r.to_string();
        let img = store.image(r)?;
        let cfg = store.read_blob(&image, cd)?;
        let cfg_name = format!("{}.json", cd.hex());
        add(&mut tb, dest, &cfg_name, cfg.len() as u64, &mut &cfg[..])?;
        let mut layers = Vec::new();
        for (l, diff_id) in img
            .manifest
            .layers()
            .iter()
            .zip(img.config.rootfs().diff_ids())
        {
            let blob = Digest::from_oci(l.digest())?;
            let diff_id = Digest::parse(diff_id)?;
            let name = format!("{}/layer.tar", diff_id.hex());
            if written.insert(diff_id.clone()) {
                let (tmp, size) = uncompressed_layer(store, &image, &blob, &diff_id)?;
                let mut f =
                    fs::File::open(&tmp.0).with_context(|| format!("open {}", tmp.0.display()))?;
                add(&mut tb, dest, &name, size, &mut f)?;
            }
            layers.push(name);
        }
        let top = layers
            .last()
            .map(|l| l.trim_end_matches("/layer.tar").to_string())
            .unwrap_or_default();
        for t in tags {
            if let Some((repo, tag)) = t.rsplit_once(':') {
                repositories
                    .entry(repo.to_string())
                    .or_default()
                    .insert(tag.to_string(), top.clone());
            }
        }
        manifest.push(serde_json::json!({
            "Config": cfg_name,
            "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { serde_json::json!(tags) },
            "Layers": layers,
        }));
    }
    let m = serde_json::to_vec(&manifest).context("encode manifest.json")?;
    add(&mut tb, dest, "manifest.json", m.len() as u64, &mut &m[..])?;
    let rp = serde_json::to_vec(&repositories).context("encode repositories")?;
    add(&mut tb, dest, "repositories", rp.len() as u64, &mut &rp[..])?;
    tb.into_inner()
        .and_then(|mut w| w.flush())
        .with_context(|| format!("write {}", dest.display()))
}

enum ArchiveKind {
    OciLayout,
    DockerArchive,
}

fn archive_kind(path: &Path) -> Result<ArchiveKind> {
    let f = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut a = tar::Archive::new(io::BufReader::new(f));
    let (mut index, mut manifest) = (false, false);
    for e in a
        .entries()
        .with_context(|| format!("read {} as a tar archive", path.display()))?
    {
        let e = e.with_context(|| format!("read {} as a tar archive", path.display()))?;
        let p = e.path().map(|p| p.into_owned()).unwrap_or_default();
        match p.to_string_lossy().trim_start_matches("./") {
            "index.json" => index = true,
            "manifest.json" => manifest = true,
            _ => {}
        }
    }
    match (index, manifest) {
        (true, _) => Ok(ArchiveKind::OciLayout),
        (false, true) => Ok(ArchiveKind::DockerArchive),
        _ => bail!(
            "{}: neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)",
            path.display()
        ),
    }
}

/// The name given to OCI layout entries that carry only a tag: `localhost/<file stem>`.
fn default_load_name(input: Option<&Path>) -> String {
    let stem: String = input
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if stem.is_empty() {
        "localhost/loaded".into()
    } else {
        format!("localhost/{stem}")
    }
}

fn load(a: &LoadArgs) -> Result<i32> {
    let store = open_store()?;
    // stdin is copied into the store's temp area first (the tar is read twice).
    let mut stdin_copy = None;
    let path = match &a.input {
        Some(p) => p.clone(),
        None => {
            if io::stdin().is_terminal() {
                bail!(
                    "requested load from stdin, but stdin is a terminal: use -i FILE or redirect"
                );
            }
            let p = store
                .root()
                .join("tmp")
                .join(format!("load-stdin-{}.tar", std::process::id()));
            let mut f = fs::File::create(&p).with_context(|| format!("create {}", p.display()))?;
            let r = io::copy(&mut io::stdin().lock(), &mut f);
            stdin_copy = Some(p.clone());
            if let Err(e) = r {
                let _ = fs::remove_file(&p);
                return Err(anyhow!(e).context("read the archive from stdin"));
            }
            p
        }
    };
    let shown = a
        .input
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<stdin>".into());
    let r = (|| -> Result<Vec<Reference>> {
        let refs = match archive_kind(&path)? {
            ArchiveKind::OciLayout => {
                archive::load_oci_tar(&store, &path, &default_load_name(a.input.as_deref()))?
            }
            ArchiveKind::DockerArchive => archive::load_docker_archive(&store, &path)?,
        };
        Ok(refs)
    })();
    if let Some(p) = stdin_copy {
        let _ = fs::remove_file(p);
    }
    let refs = r.with_context(|| format!("load {shown}"))?;
    let view = PullView::new(Out::Stdout, true);
    for r in &refs {
        unpack_with_view(&store, r, &view)
            .with_context(|| format!("unpack image {}", familiar(r)))?;
        if !a.quiet {
            if r.tag().is_some() {
                println!("Loaded image: {}", familiar(r));
            } else {
                let id = store.image(r)?.config_digest()?;
                println!("Loaded image ID: {id}");
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1536), "1.54kB");
        assert_eq!(human_size(7_796_000), "7.8MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.123456789Z"),
            Some(1_709_208_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T13:00:00+01:00"),
            Some(1_709_208_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn names_and_platforms() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(familiar(&r), "alpine:latest");
        let r = Reference::parse("127.0.0.1:5000/a/b@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap();
        assert_eq!(familiar_repo(&r), "127.0.0.1:5000/a/b");
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("localhost"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("docker.io"));
        assert_eq!(
            parse_platform("linux/arm64/v8").unwrap(),
            ("linux".into(), "arm64".into(), Some("v8".into()))
        );
        assert!(parse_platform("linux").is_err());
        assert_eq!(shown_name("nope"), "nope:latest");
        assert_eq!(
            default_load_name(Some(Path::new("/x/My Image.tar"))),
            "localhost/my-image"
        );
        assert_eq!(default_load_name(None), "localhost/loaded");
    }
}
