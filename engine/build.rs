//! Builds the bundled policy pack (the crates listed in
//! `policies/autoscaler-isolation.pack`) as wasm32-wasip2 components and
//! generates `pack.rs`, which embeds them in the binary.

include!("build/wasm_components.rs");

fn main() {
    let manifest_dir =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("engine/ sits in the workspace")
        .to_path_buf();
    let pack_file = workspace.join("policies").join("autoscaler-isolation.pack");
    for dir in ["policies", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    // The `policy` profile the components are built with lives there.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-changed=build/wasm_components.rs");
    let manifest = std::fs::read_to_string(&pack_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pack_file.display()));
    let crates: Vec<String> = manifest
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let wasm = build_components(&workspace, &crates);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let mut code = String::from(
        "/// The autoscaler-isolation pack: (policy crate, component bytes), in evaluation order.\npub const AUTOSCALER_ISOLATION: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in crates.iter().zip(&wasm) {
        let copy = out.join(format!("{name}.wasm"));
        std::fs::copy(path, &copy).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            copy.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("pack.rs"), code).expect("OUT_DIR is writable");
}
