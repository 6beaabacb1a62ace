//! The bundled policy packs, embedded in the binary at build time (see
//! `engine/build.rs`), so `tollgate` runs with nothing beside it.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/pack.rs"));
}

/// The names of the bundled packs.
pub const NAMES: &[&str] = &["autoscaler-isolation"];

/// The components of a bundled pack, by name.
pub fn policies(name: &str) -> Option<&'static [(&'static str, &'static [u8])]> {
    match name {
        "autoscaler-isolation" => Some(generated::AUTOSCALER_ISOLATION),
        _ => None,
    }
}
