//! Link flags of the `gocker` binary.

fn main() {
    // Relative relocations packed as DT_RELR (binutils >= 2.38, glibc >= 2.36, as on Debian 12):
    // the loader applies them from a 5 KiB table instead of reading 390 KiB of RELA entries at
    // every start, and the binary stays position-independent (ASLR). docs/benchmarks.md has
    // the figures.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
