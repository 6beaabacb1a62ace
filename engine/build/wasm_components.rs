// Shared by engine/build.rs and tests/build.rs (included with `include!`):
// build workspace crates as wasm32-wasip2 components with a nested cargo, in a
// target directory of their own so the outer build's lock is not contended.

/// Build `crates` (package names) for wasm32-wasip2 with the `policy` profile
/// and return the path of each crate's `.wasm`, in order.
fn build_components(workspace: &std::path::Path, crates: &[String]) -> Vec<std::path::PathBuf> {
    let target_dir = workspace.join("target").join("wasm-components");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "policy", "--target-dir"])
        .arg(&target_dir);
    for name in crates {
        cmd.args(["-p", name]);
    }
    // What the outer build sets for itself must not leak into the nested one.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_PROFILE_") || key.starts_with("CARGO_FEATURE_") {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("could not run cargo to build policy components: {e}"));
    if !status.success() {
        panic!("building the wasm32-wasip2 components {crates:?} failed (see the cargo output above)");
    }
    crates
        .iter()
        .map(|name| {
            target_dir
                .join("wasm32-wasip2")
                .join("policy")
                .join(format!("{}.wasm", name.replace('-', "_")))
        })
        .collect()
}
