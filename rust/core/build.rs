//! Builds `dockyard-shim` (a separate binary crate in this workspace) and
//! copies it to `python/dockyard/_bin/dockyard-shim`, so that `make core`,
//! `pip install -e .` and `maturin build` all ship it next to `_core`.
//!
//! The nested cargo uses its own target dir under OUT_DIR (the outer build
//! holds the lock on the main one) and the outer profile. Set
//! DOCKYARD_SKIP_SHIM_BUILD=1 to skip it (e.g. when iterating on bindings only).
//!
//! On Linux the shim is linked statically (`-C target-feature=+crt-static`,
//! glibc's libc.a from libc6-dev): it also serves as `/sbin/docker-init` for
//! `--init` under the runc driver, bind-mounted into images that have no (or
//! another) libc. The flag goes to the nested build only, with an explicit
//! `--target` so that it reaches the shim's crates but not build scripts or
//! proc macros; `_core` stays a normal cdylib. The shim uses no NSS function
//! (no getpwnam & co.), so nothing in it needs glibc's shared libraries.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The CRI proto's registry package (rust/cri-proto pins it exactly).
const CRI_PROTO_PACKAGE: &str = "k8s-cri-0.11.0";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..");
    copy_cri_proto(&root);
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
    // One per source tree: two worktrees built into one target dir share an
    // OUT_DIR (cargo's hash leaves the path out), and the nested build, its
    // shim fresh by the other tree's file times, would hand this tree the
    // other tree's shim.
    let tree = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        root.canonicalize().unwrap_or_else(|_| root.clone()).hash(&mut h);
        h.finish()
    };
    let target_dir = out.join(format!("shim-target-{tree:016x}"));
    let release = std::env::var("PROFILE").map(|p| p == "release").unwrap_or(true);
    let mut c = clean_cargo();
    c.arg("build").arg("--manifest-path").arg(&shim_manifest).arg("-p").arg("dockyard-shim").arg("--target-dir").arg(&target_dir);
    if release {
        // The workspace's `shim` profile (release with fat LTO): LTO is what
        // drops std's unused NSS functions (getaddrinfo & co.) from the static binary.
        c.arg("--profile").arg("shim");
    }
    let target = std::env::var("TARGET").unwrap_or_default();
    let static_link = target.contains("-linux-");
    if static_link {
        // The outer build's flags (RUSTFLAGS & co., which cargo hands us
        // encoded), plus static linking.
        let mut flags: Vec<String> = std::env::var("CARGO_ENCODED_RUSTFLAGS")
            .ok()
            .filter(|f| !f.is_empty())
            .map(|f| f.split('\x1f').map(str::to_string).collect())
            .unwrap_or_default();
        flags.push("-Ctarget-feature=+crt-static".into());
        c.arg("--target").arg(&target).env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    }
    let status = c.status().expect("run cargo for dockyard-shim");
    if !status.success() {
        panic!("building dockyard-shim failed");
    }
    let profile_dir = if static_link { target_dir.join(&target) } else { target_dir.clone() };
    let built = profile_dir.join(if release { "shim" } else { "debug" }).join("dockyard-shim");
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

/// A cargo command that doesn't inherit the outer build's per-crate settings.
fn clean_cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
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
    c
}

/// Copies the CRI `runtime.v1` proto that the k8s-cri crate ships (fetched
/// from crates.io like any dependency, never built) to
/// python/dockyard/cri/api.proto, where the daemon's `--cri` server generates
/// its stubs from it. `cargo metadata` downloads the package and says where.
fn copy_cri_proto(root: &Path) {
    let pin = root.join("rust/cri-proto/Cargo.toml");
    let dest_dir = root.join("python/dockyard/cri");
    println!("cargo:rerun-if-changed={}", pin.display());
    if !pin.exists() || !dest_dir.is_dir() {
        return;
    }
    let out = clean_cargo()
        .args(["metadata", "--format-version", "1", "--locked", "--manifest-path"])
        .arg(&pin)
        .output()
        .expect("run cargo metadata for the CRI proto");
    if !out.status.success() {
        panic!("cargo metadata for rust/cri-proto failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta = String::from_utf8_lossy(&out.stdout);
    // The package's "manifest_path":"<registry src>/k8s-cri-0.11.0/Cargo.toml"
    let tail = format!("/{CRI_PROTO_PACKAGE}/Cargo.toml\"");
    let end = meta.find(&tail).expect("k8s-cri in cargo metadata") + tail.len() - "/Cargo.toml\"".len();
    let key = "\"manifest_path\":\"";
    let start = meta[..end].rfind(key).expect("manifest_path") + key.len();
    let proto = PathBuf::from(&meta[start..end]).join("proto/v1.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let tmp = dest_dir.join(".api.proto.tmp");
    std::fs::copy(&proto, &tmp).expect("copy the CRI proto");
    std::fs::rename(&tmp, dest_dir.join("api.proto")).expect("install the CRI proto");
}
