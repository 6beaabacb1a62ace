//! The periodic audit: a Deployment that keeps watches and re-audits on an
//! interval with one active replica (Lease leader election), or a CronJob.
//! Both run `tollgate audit` against the cluster with in-cluster credentials
//! and, when asked, write PolicyReports; see docs/install.md for the audit
//! interface they rely on.

use serde_json::{Value, json};

use super::{Cond, Ctx, Manifest, files, names, pod};

/// Replicas of the audit Deployment: one leads, one stands by.
pub const REPLICAS: u32 = 2;

/// `tollgate audit` arguments shared by both forms.
fn args(ctx: &Ctx<'_>, periodic: bool) -> Vec<Value> {
    let s = ctx.settings;
    let mut args = vec![json!("audit"), json!("--cluster")];
    if periodic {
        args.push(
            ctx.value(r#""--interval={{ .Values.audit.interval }}""#, || {
                json!(format!("--interval={}", s.audit_interval))
            }),
        );
        args.push(json!("--leader-elect"));
        args.push(json!(format!("--lease-name={}", names::AUDIT)));
    }
    args.extend(pod::policies_args(ctx));
    args.extend(ctx.items_if(
        Cond::AuditReports,
        vec![json!("--report=policyreport"), json!("--report-apply")],
    ));
    args
}

fn pod_spec(ctx: &Ctx<'_>, periodic: bool, owner_kind: &str) -> Value {
    let (image, pull_policy) = pod::image(ctx);
    let mut spec = json!({
        "serviceAccountName": names::AUDIT,
        "priorityClassName": names::PRIORITY_CLASS,
        "securityContext": pod::pod_security_context(),
        "containers": [{
            "name": "audit",
            "image": image,
            "imagePullPolicy": pull_policy,
            "args": args(ctx, periodic),
            "env": pod::env(ctx, names::AUDIT, owner_kind),
            "resources": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            },
            "securityContext": pod::container_security_context(),
        }],
    });
    if let Some(map) = spec.as_object_mut() {
        map.extend(pod::placement(ctx, periodic.then(selector)));
    }
    if let Some((volume, mount)) = pod::policies_volume(ctx) {
        spec["volumes"] = json!([volume]);
        spec["containers"][0]["volumeMounts"] = json!([mount]);
    }
    spec
}

fn selector() -> Value {
    json!({"app.kubernetes.io/name": "tollgate", "app.kubernetes.io/component": "audit"})
}

/// The audit Deployment or CronJob.
pub fn manifests(ctx: &Ctx<'_>) -> Vec<Manifest> {
    let mut deployment_pod = pod_spec(ctx, true, "k8s.deployment.name");
    deployment_pod["terminationGracePeriodSeconds"] = json!(30);
    let mut job_pod = pod_spec(ctx, false, "k8s.cronjob.name");
    job_pod["restartPolicy"] = json!("Never");
    vec![
        Manifest {
            file: files::AUDIT,
            when: Some(Cond::AuditDeployment),
            object: json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": ctx.metadata(names::AUDIT, "audit"),
                "spec": {
                    "replicas": REPLICAS,
                    "revisionHistoryLimit": 5,
                    "selector": {"matchLabels": selector()},
                    "template": {"metadata": {"labels": ctx.labels("audit")}, "spec": deployment_pod},
                },
            }),
        },
        Manifest {
            file: files::AUDIT,
            when: Some(Cond::AuditCronJob),
            object: json!({
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": ctx.metadata(names::AUDIT, "audit"),
                "spec": {
                    "schedule": ctx.value("{{ .Values.audit.schedule | quote }}", || json!(ctx.settings.audit_schedule)),
                    "concurrencyPolicy": "Forbid",
                    "successfulJobsHistoryLimit": 1,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {"spec": {
                        "backoffLimit": 2,
                        // Exit 1 means findings: the run is over, retrying finds them again.
                        "podFailurePolicy": {"rules": [{
                            "action": "FailJob",
                            "onExitCodes": {"containerName": "audit", "operator": "In", "values": [1]},
                        }]},
                        "template": {"metadata": {"labels": ctx.labels("audit")}, "spec": job_pod},
                    }},
                },
            }),
        },
    ]
}
