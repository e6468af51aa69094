//! Sets `cfg(exitless_no_core_error)` when the compiler predates `core::error::Error`
//! (stable in Rust 1.81): Occlum's LibOS builds this crate without `std` with
//! nightly-2022-10-22 (Rust 1.66), where the no_std `Error` stand-in then takes a
//! `Display + Debug` payload instead (src/error.rs).

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    // "rustc 1.66.0-nightly (5c8bff74b 2022-10-21)"
    let release = version.split_whitespace().nth(1).unwrap_or("");
    let minor: u32 = release.split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(u32::MAX);
    // 1.81 nightlies from before the stabilization lack it too.
    let has_core_error =
        minor > 81 || (minor == 81 && !release.contains("nightly") && !release.contains("dev"));
    if minor >= 80 {
        // Declared where check-cfg is stable; older compilers do not check cfgs.
        println!("cargo:rustc-check-cfg=cfg(exitless_no_core_error)");
    }
    if !has_core_error {
        println!("cargo:rustc-cfg=exitless_no_core_error");
    }
}
