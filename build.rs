//! Links the `keel` binaries with packed relative relocations (DT_RELR) where the C library can
//! load them.
//!
//! A position-independent binary this size carries 2.4 MB of `R_X86_64_RELATIVE` entries in
//! `.rela.dyn`, which the loader reads at every start; packed, they are a 37 KB `.relr.dyn`, and
//! each Keel process keeps 1.2–2.4 MB less of the binary resident (README § Benchmarks).
//!
//! Only where glibc defines `GLIBC_ABI_DT_RELR` (2.36 and later: Debian 12, the Docker image):
//! linkers add that version as a requirement to every such binary, so one built against an older
//! glibc (Ubuntu 22.04, RHEL 9) would link and then refuse to start. And only for a native
//! build, since the probe reads this machine's C library. Tests and build tools are unaffected
//! (`rustc-link-arg-bins`).

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| env::var(k).unwrap_or_default();
    let native_glibc = var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && var("TARGET") == var("HOST");
    if native_glibc && glibc_loads_dt_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the C library the linker would use defines the `GLIBC_ABI_DT_RELR` version.
fn glibc_loads_dt_relr() -> bool {
    let Ok(out) = Command::new("cc")
        .arg("-print-file-name=libc.so.6")
        .output()
    else {
        return false;
    };
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::read(path)
        .map(|lib| lib.windows(17).any(|w| w == b"GLIBC_ABI_DT_RELR"))
        .unwrap_or(false)
}
