//! `cargo xtask dist`: the binaries as gocker ships them — `gocker` and `gocker-oci` built as
//! static PIEs (glibc's `+crt-static`, libseccomp linked from its archive). A run then starts
//! without the dynamic loader: no library lookup, mapping or symbol relocation before `main`,
//! and fewer pages to fault in when the rings fork. The binaries stay position-independent
//! (ASLR). `cargo build` keeps producing the ordinary dynamic binaries for development; the
//! benchmarks and the VM tests use these. docs/benchmarks.md has the figures.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;

use crate::util::{ensure_packages, run, step, target_dir, workspace};

/// The target named explicitly, so that `+crt-static` applies to the binaries and not to the
/// build scripts and proc-macros cargo builds for the host (a proc-macro cannot be static).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Where Debian's libseccomp-dev puts `libseccomp.a`.
const LIBSECCOMP_DIR: &str = "/usr/lib/x86_64-linux-gnu";

#[derive(ClapArgs, Default)]
pub struct Args {}

pub fn main(_: Args) -> Result<()> {
    for b in build(&workspace())? {
        println!("{}", b.display());
    }
    Ok(())
}

/// Builds `gocker` and `gocker-oci` static (release) and returns their paths, checked to have no
/// program interpreter.
pub fn build(ws: &Path) -> Result<Vec<PathBuf>> {
    ensure_packages(&["libseccomp-dev", "libc6-dev"])?;
    if !Path::new(LIBSECCOMP_DIR).join("libseccomp.a").is_file() {
        bail!("{LIBSECCOMP_DIR}/libseccomp.a: not found (Debian's libseccomp-dev ships it)");
    }
    step("build: static gocker and gocker-oci (cargo build --release --target x86_64-unknown-linux-gnu, +crt-static)");
    run(Command::new("cargo")
        .current_dir(ws)
        .args(["build", "--release", "-p", "gocker-cli", "-p", "gocker-oci"])
        .args(["--target", TARGET])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("LIBSECCOMP_LINK_TYPE", "static")
        .env("LIBSECCOMP_LIB_PATH", LIBSECCOMP_DIR))?;
    ["gocker", "gocker-oci"]
        .iter()
        .map(|name| {
            let p = target_dir().join(TARGET).join("release").join(name);
            let elf = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
            if has_interpreter(&elf) {
                bail!(
                    "{}: linked dynamically (it has a PT_INTERP header)",
                    p.display()
                );
            }
            Ok(p)
        })
        .collect()
}

/// Whether a 64-bit little-endian ELF image asks for a program interpreter (the dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return true;
    };
    (0..usize::from(phnum)).any(|i| {
        let at = phoff as usize + i * usize::from(phentsize);
        u32_at(at) == Some(PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::has_interpreter;

    /// An ELF header with one program header of type `p_type`.
    fn elf(p_type: u32) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56];
        e[..4].copy_from_slice(b"\x7fELF");
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        e[64..68].copy_from_slice(&p_type.to_le_bytes());
        e
    }

    #[test]
    fn an_interpreter_header_is_found_and_a_load_header_is_not() {
        assert!(has_interpreter(&elf(3)));
        assert!(!has_interpreter(&elf(1)));
        // The xtask binary itself is dynamic (cargo builds it without +crt-static).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&me));
        assert!(
            has_interpreter(b"not an elf"),
            "an unreadable header counts as dynamic"
        );
    }
}
