//! Helpers shared by every topic module: a fresh temporary directory per test,
//! the real `tollgate` binary run as a user would, the test guests (built once
//! per test process with the engine's own component builder), the shared
//! library runtime, the external data folders, and accessors for verdicts.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate::cluster::{ClusterView, Empty};
use tollgate::decision::{FaultKind, PolicyResult, Verdict};
use tollgate::evaluator::Evaluator;
use tollgate::policy::{PolicySet, SetConfig};
use tollgate::review::Review;
use tollgate::wasm::{Runtime, RuntimeConfig};

// `build_components(workspace, crates)`: the same nested cargo build that
// engine/build.rs uses for the bundled pack.
include!("../engine/build/wasm_components.rs");

/// The workspace root (the engine's manifest directory's parent).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine/ is inside the workspace")
        .to_path_buf()
}

/// Third-party test material, read in place (`$TOLLGATE_EXTERNAL_DIR`).
pub fn external_dir() -> PathBuf {
    shared_dir("TOLLGATE_EXTERNAL_DIR", "external")
}

/// Real-world cluster material, read in place (`$TOLLGATE_CORPUS_DIR`).
#[allow(dead_code)]
pub fn corpus_dir() -> PathBuf {
    shared_dir("TOLLGATE_CORPUS_DIR", "corpus")
}

fn shared_dir(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("..").join("shared").join(name))
}

// ---------------------------------------------------------------------------
// Temporary directories

/// A fresh directory for one test, removed when dropped.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// A new empty directory.
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("tollgate-it-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `contents` at `relative` (parents created) and return the path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a file has a parent"))
            .expect("create parent dirs");
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// Write `value` as JSON at `relative`.
    pub fn write_json(&self, relative: &str, value: &Value) -> PathBuf {
        self.write(
            relative,
            serde_json::to_vec_pretty(value).expect("serialize"),
        )
    }

    /// Write a CelPolicy at `<relative>.yaml`, named after the file (the last
    /// component of `relative`); `spec` is the body of its `spec:` mapping,
    /// each line indented by two spaces.
    pub fn write_cel_policy(&self, relative: &str, spec: &str) -> PathBuf {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        self.write(
            &format!("{relative}.yaml"),
            format!("apiVersion: tollgate.dev/v1alpha1\nkind: CelPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}"),
        )
    }

    /// Write a snapshot directory `cluster/`: Namespace `team` (label
    /// `tenant: blue`), Pods `team/web-1` (app=web), `team/web-2` (app=web,
    /// tier=front), `team/db-1` (app=db) and `other/web-9` (app=web), and the
    /// cluster-autoscaler Deployment with node group `0:3:cx32:fsn1:k3s-batman`.
    pub fn write_cluster(&self) -> PathBuf {
        self.write(
            "cluster/namespaces.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n  labels: {tenant: blue}\n",
        );
        let pods = [
            labelled_pod("team", "web-1", json!({"app": "web"})),
            labelled_pod("team", "web-2", json!({"app": "web", "tier": "front"})),
            labelled_pod("team", "db-1", json!({"app": "db"})),
            labelled_pod("other", "web-9", json!({"app": "web"})),
        ];
        self.write_json(
            "cluster/pods.json",
            &json!({"apiVersion": "v1", "kind": "List", "items": pods}),
        );
        self.write_json(
            "cluster/kube-system/autoscaler.json",
            &autoscaler_deployment(&["0:3:cx32:fsn1:k3s-batman"]),
        );
        self.path().join("cluster")
    }

    /// Copy a file into the sandbox under `relative`.
    pub fn copy(&self, from: &Path, relative: &str) -> PathBuf {
        self.write(
            relative,
            std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())),
        )
    }
}

// ---------------------------------------------------------------------------
// Test guests

macro_rules! guests {
    ($($variant:ident => $dir:literal,)*) => {
        /// A test guest: one crate under tests/guests/.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Guest { $($variant,)* }

        impl Guest {
            /// Every guest, in build order.
            pub const ALL: &[Guest] = &[$(Guest::$variant,)*];

            /// Its directory under tests/guests/.
            pub fn dir(self) -> &'static str {
                match self { $(Guest::$variant => $dir,)* }
            }

            /// Its variant name, as tests spell it (`Guest::Echo`).
            pub fn variant(self) -> &'static str {
                match self { $(Guest::$variant => stringify!($variant),)* }
            }
        }
    };
}

guests! {
    Echo => "echo",
    InfiniteLoop => "infinite-loop",
    MemoryBomb => "memory-bomb",
    DeepRecursion => "deep-recursion",
    Trap => "trap",
    HugeOutput => "huge-output",
    LogFlood => "log-flood",
    WrongWorld => "wrong-world",
    Counter => "counter",
    PlainWorld => "plain-world",
}

impl Guest {
    /// Its cargo package name.
    pub fn package(self) -> String {
        format!("guest-{}", self.dir())
    }

    /// The built component (every guest is built on first use, once per process).
    pub fn wasm(self) -> &'static Path {
        static BUILT: OnceLock<Result<Vec<PathBuf>, String>> = OnceLock::new();
        let built = BUILT.get_or_init(|| {
            let packages: Vec<String> = Guest::ALL.iter().map(|g| g.package()).collect();
            build_once(&packages)
        });
        match built {
            Ok(paths) => {
                paths[Guest::ALL.iter().position(|g| *g == self).expect("listed")].as_path()
            }
            Err(e) => panic!("building the test guests failed: {e}"),
        }
    }

    /// The component's path as a `--policy` argument.
    pub fn arg(self) -> String {
        self.wasm().display().to_string()
    }
}

/// The example policy `pool-tenancy` built as a component, if the example exists.
pub fn pool_tenancy_wasm() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<Result<Vec<PathBuf>, String>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        workspace()
            .join("examples/pool-tenancy/Cargo.toml")
            .is_file()
            .then(|| build_once(&["pool-tenancy".into()]))
    });
    match built {
        None => None,
        Some(Ok(paths)) => Some(paths[0].as_path()),
        Some(Err(e)) => panic!("building examples/pool-tenancy failed: {e}"),
    }
}

/// Run the engine's component builder, turning its panic into an error so a
/// failed build is reported once per test instead of retried by each.
fn build_once(packages: &[String]) -> Result<Vec<PathBuf>, String> {
    let workspace = workspace();
    std::panic::catch_unwind(|| build_components(&workspace, packages)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "cargo build panicked".into())
    })
}

/// Directories under tests/guests/.
pub fn guest_directories() -> BTreeSet<String> {
    std::fs::read_dir(workspace().join("tests/guests"))
        .expect("tests/guests exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// The tollgate binary

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Standard output parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Standard output parsed as a verdict.
    pub fn verdict(&self) -> Verdict {
        serde_json::from_value(self.json())
            .unwrap_or_else(|e| panic!("stdout is not a verdict ({e}):\n{}", self.stdout))
    }

    /// Non-empty lines of standard error.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// The last non-empty line of standard error ("" when there is none).
    pub fn last_stderr_line(&self) -> String {
        self.stderr_lines()
            .last()
            .copied()
            .unwrap_or_default()
            .to_string()
    }

    /// Assert the exit code, showing the output when it differs.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Assert the run is a clean bad-input failure: exit 2, exactly one line
    /// on stderr that contains every one of `mentions`, and no panic.
    pub fn assert_bad_input(&self, mentions: &[&str]) {
        self.assert_code(2);
        let lines = self.stderr_lines();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one stderr line, got:\n{}",
            self.stderr
        );
        let line = lines[0];
        for needle in mentions {
            assert!(
                line.contains(needle),
                "stderr does not mention {needle:?}: {line}"
            );
        }
        for forbidden in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(!line.contains(forbidden), "stderr shows a panic: {line}");
        }
        assert!(
            self.stdout.trim().is_empty(),
            "bad input printed a result:\n{}",
            self.stdout
        );
    }
}

/// Run `tollgate` with `args`, feeding `stdin` (empty when `None`), and wait
/// at most a few minutes (a hang fails the test rather than the suite).
pub fn tollgate<S: AsRef<OsStr>>(args: &[S], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env("TOLLGATE_CACHE_DIR", cache_dir())
        .env_remove("TOLLGATE_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the tollgate binary");
    let input = stdin.map(<[u8]>::to_vec).unwrap_or_default();
    let mut pipe = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for tollgate") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "tollgate {:?} did not finish within 300 s",
                args.iter().map(AsRef::as_ref).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The compile cache the binary uses in tests (kept between runs: its file
/// names carry the component hash and the engine's compatibility hash).
pub fn cache_dir() -> PathBuf {
    workspace().join("target").join("integration-cache")
}

/// A `tollgate eval` command line under construction.
#[derive(Debug, Default)]
pub struct Eval {
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
}

impl Eval {
    /// `tollgate eval` with `--policy` for each of `policies`.
    pub fn new<S: AsRef<OsStr>>(policies: &[S]) -> Self {
        let mut eval = Eval {
            args: vec!["eval".into()],
            stdin: None,
        };
        for policy in policies {
            eval = eval.arg("--policy").arg(policy);
        }
        eval
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// `--settings <path>`.
    pub fn settings(self, path: impl AsRef<OsStr>) -> Self {
        self.arg("--settings").arg(path)
    }

    /// `--context <path>`.
    pub fn context(self, path: impl AsRef<OsStr>) -> Self {
        self.arg("--context").arg(path)
    }

    /// `--object <path>`.
    pub fn object(self, path: impl AsRef<OsStr>) -> Self {
        self.arg("--object").arg(path)
    }

    /// `--request <path>`.
    pub fn request(self, path: impl AsRef<OsStr>) -> Self {
        self.arg("--request").arg(path)
    }

    /// Feed `bytes` on standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Run as given.
    pub fn run(&self) -> Run {
        tollgate(&self.args, self.stdin.as_deref())
    }

    /// Run with `-o json`, check the exit code is 0 or 1 (a verdict), and
    /// return the run and its verdict.
    pub fn verdict(self) -> (Run, Verdict) {
        let run = self.arg("-o").arg("json").run();
        assert!(
            matches!(run.code, 0 | 1),
            "expected a verdict (exit 0 or 1)\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
        let verdict = run.verdict();
        assert_eq!(
            run.code == 0,
            verdict.allowed,
            "exit code {} disagrees with allowed={}",
            run.code,
            verdict.allowed
        );
        (run, verdict)
    }
}

// ---------------------------------------------------------------------------
// The library

/// One runtime for every library test in the process, as a server would
/// share it. No compile cache: concurrent tests compile the same components.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(&RuntimeConfig {
            max_concurrent: 16,
            cache_dir: None,
            ..RuntimeConfig::default()
        })
        .expect("wasm runtime")
    })
}

/// Load policies (paths) with a settings document, as `--settings` would;
/// the error is the message a user would see.
pub fn try_load(policies: &[&Path], settings: Value) -> Result<PolicySet, String> {
    let specs: Vec<String> = policies.iter().map(|p| p.display().to_string()).collect();
    let config = SetConfig::from_value(Path::new("test-settings.yaml"), settings)
        .map_err(|e| e.to_string())?;
    PolicySet::load(runtime(), &specs, &config).map_err(|e| e.to_string())
}

/// [`try_load`] that must succeed.
pub fn load(policies: &[&Path], settings: Value) -> Evaluator {
    Evaluator::new(
        try_load(policies, settings).unwrap_or_else(|e| panic!("policies do not load: {e}")),
    )
}

/// A review of a plain object.
pub fn review(object: Value) -> Review {
    Review::from_object(object).unwrap_or_else(|e| panic!("not a reviewable object: {e}"))
}

/// No cluster context (preset node pools).
pub fn no_context() -> Arc<dyn ClusterView> {
    Arc::new(Empty::default())
}

// ---------------------------------------------------------------------------
// Objects

/// A minimal Pod.
pub fn pod(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "nginx"}]}
    })
}

/// A Pod with labels.
pub fn labelled_pod(namespace: &str, name: &str, labels: Value) -> Value {
    let mut pod = pod(namespace, name);
    pod["metadata"]["labels"] = labels;
    pod
}

/// The kube-hetzner cluster-autoscaler Deployment with `--nodes` flags.
pub fn autoscaler_deployment(nodes: &[&str]) -> Value {
    let mut command = vec![
        "./cluster-autoscaler".to_string(),
        "--cloud-provider=hetzner".to_string(),
    ];
    command.extend(nodes.iter().map(|n| format!("--nodes={n}")));
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cluster-autoscaler", "namespace": "kube-system"},
        "spec": {"template": {"spec": {"containers": [{
            "name": "cluster-autoscaler",
            "image": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.32.0",
            "command": command
        }]}}}
    })
}

/// An AdmissionReview v1 around `object` (and `old_object` for an UPDATE).
pub fn admission_review(
    uid: &str,
    operation: &str,
    namespace: &str,
    object: Value,
    old_object: Option<Value>,
) -> Value {
    let kind = object["kind"].clone();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "tester", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old_object,
            "dryRun": false
        }
    })
}

// ---------------------------------------------------------------------------
// Verdicts

/// Accessors on a verdict.
pub trait VerdictExt {
    /// The result of `policy`, which must be present.
    fn result(&self, policy: &str) -> &PolicyResult;
}

impl VerdictExt for Verdict {
    fn result(&self, policy: &str) -> &PolicyResult {
        self.results
            .iter()
            .find(|r| r.policy == policy)
            .unwrap_or_else(|| {
                let names: Vec<&str> = self.results.iter().map(|r| r.policy.as_str()).collect();
                panic!("no result for policy {policy}; results: {names:?}")
            })
    }
}

/// Accessors on one policy's result.
pub trait ResultExt {
    /// The fault kind, if the policy failed.
    fn fault(&self) -> Option<FaultKind>;
    /// What the `echo` guest reported for `rule` (a violation, or a
    /// `<rule>: <message>` warning when it was told to allow).
    fn fact(&self, rule: &str) -> String;
}

impl ResultExt for PolicyResult {
    fn fault(&self) -> Option<FaultKind> {
        self.error.as_ref().map(|f| f.kind)
    }

    fn fact(&self, rule: &str) -> String {
        let prefix = format!("{rule}: ");
        self.violations
            .iter()
            .find(|v| v.rule == rule)
            .map(|v| v.message.clone())
            .or_else(|| {
                self.warnings
                    .iter()
                    .find_map(|w| w.strip_prefix(&prefix).map(str::to_string))
            })
            .unwrap_or_else(|| panic!("{} reported no {rule}: {self:#?}", self.policy))
    }
}

/// Assert that `echo` ran normally on a Pod named `name` in `namespace`.
pub fn assert_echo_ran(verdict: &Verdict, namespace: &str, name: &str) {
    let echo = verdict.result("echo");
    assert_eq!(echo.error, None, "echo faulted: {echo:#?}");
    let seen = echo.fact("seen-review");
    assert!(
        seen.starts_with(&format!("Pod {namespace}/{name} ")),
        "echo saw {seen:?}"
    );
}

/// The Deployment kubectl generates for `kubectl create deployment web --image=nginx`.
pub fn kubectl_deployment() -> Value {
    let output = Command::new("kubectl")
        .args([
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--dry-run=client",
            "-o",
            "json",
        ])
        .output()
        .expect("kubectl is installed");
    assert!(
        output.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
}
