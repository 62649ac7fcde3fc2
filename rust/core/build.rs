//! Builds `dockyard-shim` (a separate binary crate in this workspace) and
//! copies it to `python/dockyard/_bin/dockyard-shim`, so that `make core`,
//! `pip install -e .` and `maturin build` all ship it next to `_core`.
//!
//! The nested cargo uses its own target dir under OUT_DIR (the outer build
//! holds the lock on the main one) and the outer profile. Set
//! DOCKYARD_SKIP_SHIM_BUILD=1 to skip it (e.g. when iterating on bindings only).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..");
    for p in ["rust/shim/src", "rust/shim/Cargo.toml", "rust/runtime/src", "rust/runtime/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=DOCKYARD_SKIP_SHIM_BUILD");
    if std::env::var_os("DOCKYARD_SKIP_SHIM_BUILD").is_some_and(|v| v == "1") {
        return;
    }
    let shim_manifest = root.join("rust/shim/Cargo.toml");
    if !shim_manifest.exists() {
        println!("cargo:warning=rust/shim not found; dockyard-shim not bundled");
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = out.join("shim-target");
    let release = std::env::var("PROFILE").map(|p| p == "release").unwrap_or(true);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.arg("build").arg("--manifest-path").arg(&shim_manifest).arg("-p").arg("dockyard-shim").arg("--target-dir").arg(&target_dir);
    if release {
        c.arg("--release");
    }
    // Don't leak the outer build's per-crate settings into the nested one.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_NET_OFFLINE")
            || k == "RUSTC_WRAPPER"
            || k == "RUSTC_WORKSPACE_WRAPPER"
            || k.starts_with("PYO3_")
            || k == "MAKEFLAGS"
            || k == "MFLAGS"
        {
            c.env_remove(&k);
        }
    }
    let status = c.status().expect("run cargo for dockyard-shim");
    if !status.success() {
        panic!("building dockyard-shim failed");
    }
    let built = target_dir.join(if release { "release" } else { "debug" }).join("dockyard-shim");
    let dest_dir = root.join("python/dockyard/_bin");
    if root.join("python/dockyard").is_dir() {
        std::fs::create_dir_all(&dest_dir).expect("mkdir python/dockyard/_bin");
        let dest = dest_dir.join("dockyard-shim");
        let tmp = dest_dir.join(".dockyard-shim.tmp");
        std::fs::copy(&built, &tmp).expect("copy dockyard-shim");
        std::fs::rename(&tmp, &dest).expect("install dockyard-shim");
    }
    println!("cargo:rustc-env=DOCKYARD_SHIM_BUILT={}", built.display());
}
