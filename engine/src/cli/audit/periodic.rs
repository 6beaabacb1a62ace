//! `tollgate audit --interval`: keep the cluster in memory through watches
//! ([`Watches`]), audit it on schedule, and (with `--leader-elect`) only while
//! holding the Lease ([`Elector`]). SIGTERM or SIGINT stops the schedule,
//! releases the Lease and closes the watches; the exit code is then 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::{AuditArgs, Auditor};
use crate::cluster::live::lease::{Elector, LeaseOptions};
use crate::cluster::live::watch::Watches;
use crate::cluster::live::{Connect, KINDS, describe};

/// Where the service account's namespace is mounted in a pod.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The schedule and election.
pub(super) struct Options {
    interval: Duration,
    page_size: u32,
    apply: bool,
    lease: Option<LeaseOptions>,
}

impl Options {
    pub(super) fn new(args: &AuditArgs, interval: Duration) -> anyhow::Result<Self> {
        if interval.is_zero() || args.lease_duration.is_zero() {
            anyhow::bail!("--interval and --lease-duration must be longer than zero");
        }
        let lease = if args.leader_elect {
            let namespace = args
                .lease_namespace
                .clone()
                .or_else(|| {
                    std::fs::read_to_string(POD_NAMESPACE_FILE)
                        .ok()
                        .map(|s| s.trim().to_string())
                })
                .unwrap_or_else(|| "default".into());
            let identity = args
                .lease_identity
                .clone()
                .or_else(|| std::env::var("POD_NAME").ok())
                .unwrap_or_else(|| {
                    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_string())
                        .unwrap_or_else(|_| "tollgate".into());
                    format!("{host}-{}", std::process::id())
                });
            Some(LeaseOptions {
                name: args.lease_name.clone(),
                namespace,
                identity,
                duration: args.lease_duration,
            })
        } else {
            None
        };
        Ok(Options {
            interval,
            page_size: args.page_size,
            apply: args.report_apply,
            lease,
        })
    }
}

/// Run audits on schedule until SIGTERM or SIGINT.
pub(super) async fn run(
    connect: Connect,
    auditor: Arc<Auditor>,
    options: Options,
) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let client = connect.client().await?;
    let watches = Watches::start(&client, options.page_size, KINDS);
    let mut stopped = stop.clone();
    tokio::select! {
        ready = watches.ready() => ready.map_err(anyhow::Error::msg)?,
        _ = stopped.wait_for(|s| *s) => return Ok(()),
    }
    tracing::info!(events = watches.events(), "watches synced");
    let (leading, elector) = match options.lease.clone() {
        Some(lease) => {
            let elector = Arc::new(Elector::new(client.clone(), lease));
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(elect(elector.clone(), tx, stop.clone()));
            (rx, Some((elector, task)))
        }
        None => (watch::channel(true).1, None),
    };
    let mut ticker = tokio::time::interval(options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut run = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
        if !*leading.borrow() {
            tracing::debug!("not the leader: skipping this audit");
            continue;
        }
        run += 1;
        let started = Instant::now();
        let objects = watches.objects();
        let count = objects.len();
        let pass = auditor.clone();
        let report = tokio::task::spawn_blocking(move || pass.audit(pass.snapshot_of(objects)))
            .await
            .context("the audit task failed")??;
        auditor.print(&report)?;
        // A report that cannot be written or applied is retried at the next audit.
        let reports = auditor.report_objects(&report);
        if let Err(e) = auditor.write_reports(&reports) {
            tracing::error!(error = format!("{e:#}"), "cannot write the reports");
        }
        if options.apply
            && let Err(e) = auditor.apply_reports(&client, &reports).await
        {
            tracing::error!(error = %e, "cannot apply the reports");
        }
        let s = &report.summary;
        tracing::info!(
            run,
            objects = count,
            watch_events = watches.events(),
            high = s.findings.high,
            medium = s.findings.medium,
            low = s.findings.low,
            removable = s.nodes.removable,
            blocked = s.nodes.blocked,
            millis = started.elapsed().as_millis() as u64,
            "audit done"
        );
    }
    if let Some((elector, task)) = elector {
        let _ = task.await;
        if let Err(e) = elector.release().await {
            tracing::warn!(error = %describe(&e), "cannot release the lease");
        }
    }
    drop(watches);
    Ok(())
}

/// Keep trying to acquire or renew the Lease; publish whether this replica leads.
async fn elect(
    elector: Arc<Elector>,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let options = elector.options().clone();
    let mut last_renewal: Option<Instant> = None;
    loop {
        let now_leading = match elector.try_acquire_or_renew().await {
            Ok(true) => {
                last_renewal = Some(Instant::now());
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %describe(&e), "lease request failed");
                // Keep leading only while the last renewal is still within the lease.
                last_renewal.is_some_and(|t| t.elapsed() < options.duration)
            }
        };
        if now_leading != *leading.borrow() {
            tracing::info!(
                identity = options.identity,
                lease = format!("{}/{}", options.namespace, options.name),
                "{}",
                if now_leading {
                    "became the leader"
                } else {
                    "lost the lease"
                }
            );
            let _ = leading.send(now_leading);
        }
        tokio::select! {
            _ = tokio::time::sleep(options.retry_period()) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
