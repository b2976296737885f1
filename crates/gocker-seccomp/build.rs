//! Links against the runtime library alone (`libseccomp2`: `libseccomp.so.2`), without the
//! development package (`libseccomp-dev`: the unversioned `libseccomp.so` symlink and headers).
//!
//! `libseccomp-sys` emits `-l seccomp`, which the linker resolves only through an unversioned
//! `libseccomp.so`. When no such file exists in the usual places, this script creates one in
//! `OUT_DIR` pointing at the versioned library and adds `OUT_DIR` to the link search path (search
//! paths propagate to every binary that links this crate). The binaries then record the soname
//! `libseccomp.so.2`, exactly as with the development package installed. `LIBSECCOMP_LIB_PATH`
//! (honoured by libseccomp-sys) still takes precedence.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBSECCOMP_LIB_PATH");
    println!("cargo:rerun-if-env-changed=LIBSECCOMP_LINK_TYPE");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("LIBSECCOMP_LIB_PATH").is_some() {
        return;
    }
    if std::env::var("LIBSECCOMP_LINK_TYPE").as_deref() == Ok("static") {
        return;
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        other => other,
    };
    let dirs: Vec<PathBuf> = [
        format!("/usr/lib/{multiarch}"),
        format!("/lib/{multiarch}"),
        "/usr/lib64".into(),
        "/lib64".into(),
        "/usr/lib".into(),
        "/lib".into(),
        "/usr/local/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    if dirs.iter().any(|d| d.join("libseccomp.so").exists()) {
        return; // the development package is installed: nothing to do
    }
    let Some(lib) = dirs
        .iter()
        .map(|d| d.join("libseccomp.so.2"))
        .find(|p| p.exists())
    else {
        panic!(
            "gocker-seccomp: libseccomp.so.2 not found in {dirs:?}: install the libseccomp runtime library \
             (Debian/Ubuntu: libseccomp2, Fedora: libseccomp) or set LIBSECCOMP_LIB_PATH"
        );
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let link = out.join("libseccomp.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link).unwrap_or_else(|e| {
        panic!(
            "gocker-seccomp: symlink {} -> {}: {e}",
            link.display(),
            lib.display()
        )
    });
    println!("cargo:rustc-link-search=native={}", out.display());
}
