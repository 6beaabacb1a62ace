//! Tollgate's integration tests: one test binary (a test target of the engine
//! package, so `CARGO_BIN_EXE_tollgate` is the real CLI) with a module per topic.
//!
//! Run with `cargo test -p tollgate --test integration`. The test guests under
//! `tests/guests/` are built once per process for wasm32-wasip2 (see
//! [`util::Guest`]); external samples are read in place from
//! `$TOLLGATE_EXTERNAL_DIR` (default `../shared/external`).

mod corpus;
mod fake_apiserver;
mod util;

mod admission;
mod cel_eval_cli;
mod cel_policies;
mod conformance;
mod conformance_kyverno;
mod eval_cli;
mod generate;
mod generate_native;
mod host_imports;
mod hostile;
mod install;
mod instances;
mod krm;
mod live;
mod native_policies;
mod otlp;
mod pack;
mod parity;
mod review_text;
mod selection;
mod serve_cluster;
mod serve_configmap;
mod snapshots;
mod worlds;

/// Every directory under tests/guests/ is a listed [`util::Guest`], and every
/// guest is used by a test outside util.rs, so an orphan guest fails the suite.
#[test]
fn every_guest_is_listed_and_used_by_a_test() {
    let listed: std::collections::BTreeSet<String> = util::Guest::ALL
        .iter()
        .map(|g| g.dir().to_string())
        .collect();
    assert_eq!(
        util::guest_directories(),
        listed,
        "tests/guests/* and util::Guest must list the same guests"
    );
    let tests_dir = util::workspace().join("tests");
    let sources: String = std::fs::read_dir(&tests_dir)
        .expect("tests/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "rs")
                && !p.ends_with("util.rs")
                && !p.ends_with("main.rs")
        })
        .map(|p| std::fs::read_to_string(&p).expect("read test source"))
        .collect();
    for guest in util::Guest::ALL {
        let usage = format!("Guest::{}", guest.variant());
        assert!(
            sources.contains(&usage),
            "guest {} is not used by any test ({usage} appears nowhere)",
            guest.dir()
        );
    }
}
