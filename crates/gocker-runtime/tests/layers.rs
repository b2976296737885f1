//! The layers of gocker-runtime (docs/architecture.md): a module may use modules of its own layer
//! or of a layer below it, never of one above, and no modules may use each other in a circle.
//! An edge is a `crate::MODULE` path (or `use crate::{MODULE, ...}`) outside comments, as the
//! repository's `modcycles.py` counts them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom to top. Every module of src/ must be listed.
const LAYERS: &[(&str, &[&str])] = &[
    // Plain helpers: errors, process plumbing, the detach-key notation, logs, signals.
    (
        "leaf",
        &[
            "error", "sys", "keys", "logs", "signals", "sysctl", "events", "volatile",
        ],
    ),
    // The wire and the plan: ring messages, the channel, the configuration, the spec, seccomp,
    // the payload's privilege drop, terminals, the ring seam (the rings' steps as traits).
    (
        "plan",
        &[
            "channel", "proto", "config", "spec", "seccomp", "process", "tty", "initsys",
            "restart", "health",
        ],
    ),
    // Host-side records and helpers the rings are given: state store, namespace joins, the
    // container's own files, the exec spawn mode.
    ("state", &["state", "joins", "own_files", "spawn"]),
    // What the rings call into: networking, lift, the seccomp supervisor, workspace mode, the
    // OCI process model.
    (
        "services",
        &[
            "net",
            "lift",
            "supervise",
            "workspace",
            "oci_init",
            "control",
            "init",
        ],
    ),
    ("ring2", &["ring2"]),
    ("ring1", &["ring1"]),
    ("ring0", &["ring0"]),
    ("entry", &["entry"]),
    // The lifecycle verbs on top: run a bundle, exec, attach and detach, the OCI runtime CLI.
    (
        "lifecycle",
        &[
            "bundle",
            "nsexec",
            "attach",
            "detach",
            "healthcheck",
            "oci",
            "crate",
        ],
    ),
];

fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "rs") {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let name = if stem == "lib" { "crate".into() } else { stem };
            out.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut e = BTreeMap::new();
    for (m, text) in mods {
        let text = strip_comments(text);
        let mut to = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(list) = rest.strip_prefix('{') {
                let list = &list[..list.find('}').unwrap_or(list.len())];
                for name in list.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                    if mods.contains_key(name) && name != m {
                        to.insert(name.to_owned());
                    }
                }
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if mods.contains_key(&name) && &name != m {
                to.insert(name);
            }
        }
        e.insert(m.clone(), to);
    }
    e
}

#[test]
fn no_module_uses_a_layer_above_it_and_there_are_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, ms))| ms.iter().map(move |m| (*m, i)))
        .collect();
    let unlisted: Vec<&String> = mods
        .keys()
        .filter(|m| !layer_of.contains_key(m.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "modules missing from LAYERS: {unlisted:?}"
    );
    let e = edges(&mods);
    let mut upward = Vec::new();
    for (from, tos) in &e {
        for to in tos {
            let (lf, lt) = (layer_of[from.as_str()], layer_of[to.as_str()]);
            if lt > lf {
                upward.push(format!(
                    "{from} ({}) uses {to} ({})",
                    LAYERS[lf].0, LAYERS[lt].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "references to a layer above:\n{}",
        upward.join("\n")
    );
    // No cycles: a depth-first search that finds no back edge.
    fn visit<'a>(
        m: &'a str,
        e: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let i = path.iter().position(|p| *p == m).unwrap();
                return Some(path[i..].iter().map(|s| s.to_string()).collect());
            }
            _ => {}
        }
        state.insert(m, 1);
        path.push(m);
        for to in &e[m] {
            if let Some(c) = visit(to, e, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(m, 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in e.keys() {
        if let Some(c) = visit(m, &e, &mut state, &mut Vec::new()) {
            panic!("a cycle between modules: {}", c.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_edges_in_paths_and_brace_lists() {
    let mods: BTreeMap<String, String> = [
        (
            "a",
            "use crate::{b, Result};\nfn f() { crate::c::g(); } // crate::d::h",
        ),
        ("b", ""),
        ("c", ""),
        ("d", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let e = edges(&mods);
    assert_eq!(
        e["a"].iter().map(String::as_str).collect::<Vec<_>>(),
        ["b", "c"]
    );
}
