//! `tollgate serve --policies <dir>` where the directory is a mounted
//! ConfigMap: the kubelet's atomic writer keeps the files in a timestamped
//! directory, points `..data` at it, and makes each key a symlink through
//! `..data`; an update writes a new timestamped directory and swaps `..data`
//! in one rename. The server must see the swap as a change and reload.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::admission::{Cert, Server, block_on, message, policy_text};
use crate::util::{Sandbox, admission_review, kubectl_deployment};

/// Write the ConfigMap's payload `key` = `text` as the kubelet would, as
/// version `version`, and point `..data` at it (one rename).
fn publish(volume: &Path, version: u32, key: &str, text: &str) {
    let payload = format!("..2026_11_28_00_00_0{version}.000000001");
    std::fs::create_dir_all(volume.join(&payload)).expect("payload directory");
    std::fs::write(volume.join(&payload).join(key), text).expect("payload file");
    let staged = volume.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    symlink(&payload, &staged).expect("stage ..data");
    std::fs::rename(&staged, volume.join("..data")).expect("swap ..data");
    let link = volume.join(key);
    if std::fs::symlink_metadata(&link).is_err() {
        symlink(Path::new("..data").join(key), &link).expect("key symlink");
    }
}

fn replica_policy(max: u32) -> String {
    policy_text(
        "replica-limit",
        &format!(
            "  kinds: [Deployment]\n  validations:\n    - rule: too-many-replicas\n      expression: \"object.spec.replicas <= {max}\"\n      message: at most {max} replicas\n"
        ),
    )
}

#[test]
fn a_configmap_volume_update_is_reloaded() {
    let sandbox = Sandbox::new();
    let cert = Cert::new();
    let volume = sandbox.path().join("policies");
    std::fs::create_dir_all(&volume).expect("volume");
    publish(&volume, 1, "replica-limit.yaml", &replica_policy(5));
    let volume_arg = volume.display().to_string();
    let server = Server::start(&sandbox, &cert, &["--policies", &volume_arg]);
    // kubectl create deployment has one replica.
    let review = admission_review("uid-cm", "CREATE", "default", kubectl_deployment(), None);
    block_on(async {
        let mut conn = server.connect(&cert).await;
        assert_eq!(conn.review("/validate", &review).await["allowed"], true);
        publish(&volume, 2, "replica-limit.yaml", &replica_policy(0));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let response = conn.review("/validate", &review).await;
            if response["allowed"] == false {
                assert!(
                    message(&response).contains("at most 0 replicas"),
                    "{response}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the swapped ConfigMap was not reloaded within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(
        server.log_text().contains("policy set reloaded"),
        "{}",
        server.log_text()
    );
}
