//! A live cluster read through kube-rs: connect with a kubeconfig (or the
//! in-cluster service account), list exactly the kinds evaluation needs page
//! by page, keep only the fields it reads, and index them as a
//! [`Snapshot`](super::Snapshot),
//! so a live audit evaluates exactly as a snapshot audit does.
//!
//! Submodules: [`kinds`] (what is read and what is kept of it), [`watch`]
//! (reflectors for periodic audits), [`lease`] (leader election).

pub mod kinds;
pub mod lease;
pub mod watch;

use std::path::PathBuf;

use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

use crate::error_text::one_line;

pub use kinds::{KINDS, Kind};

/// Page size of list requests (client-go's default).
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// Why the cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot load the cluster configuration: {0}")]
    Config(String),
    /// The client could not be built.
    #[error("cannot build a Kubernetes client: {}", describe(.0))]
    Client(kube::Error),
    /// A list request failed.
    #[error("cannot list {kind}: {}", describe(.cause))]
    List {
        /// The kind (plural resource).
        kind: String,
        /// The API error (described in the message, not chained).
        cause: kube::Error,
    },
}

/// Explain an API error in one line (its causes included once), with the
/// RBAC hint on 403.
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "{} (forbidden: bind the matching ClusterRole of docs/audit.md to this identity)",
            status.message
        ),
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => one_line(other),
    }
}

/// How to reach the cluster: kubectl's flags.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// `--kubeconfig` (default `$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// `--context` (default the kubeconfig's current context).
    pub context: Option<String>,
}

impl Connect {
    /// The client configuration: the named kubeconfig and context when given;
    /// otherwise `$KUBECONFIG` or `~/.kube/config`, and the pod's service
    /// account when there is no kubeconfig (in-cluster).
    ///
    /// # Errors
    /// No kubeconfig and not in a cluster, an unreadable kubeconfig, or an unknown context.
    pub async fn config(&self) -> Result<Config, Error> {
        if self.kubeconfig.is_none() && self.context.is_none() {
            return Config::infer()
                .await
                .map_err(|e| Error::Config(one_line(&e)));
        }
        let file = match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path)
                .map_err(|e| Error::Config(format!("{}: {}", path.display(), one_line(&e))))?,
            None => Kubeconfig::read().map_err(|e| Error::Config(one_line(&e)))?,
        };
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| Error::Config(one_line(&e)))
    }

    /// A client for the cluster.
    ///
    /// # Errors
    /// See [`Connect::config`]; a client that cannot be built (TLS material).
    pub async fn client(&self) -> Result<Client, Error> {
        // kube and rustls both use ring; one process-wide provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::try_from(self.config().await?).map_err(Error::Client)
    }
}

/// List every object of every kind in [`KINDS`], `page_size` objects per
/// request (following `continue` tokens), slimmed as they arrive so that only
/// one page is ever held in full. `progress` is told the kind and the count
/// read so far after each page.
///
/// # Errors
/// The first list request that fails (RBAC, network, API errors).
pub async fn list_cluster(
    client: &Client,
    page_size: u32,
    progress: &mut dyn FnMut(&Kind, usize),
) -> Result<Vec<Value>, Error> {
    let mut objects = Vec::new();
    for kind in KINDS {
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let mut params = ListParams::default().limit(page_size.max(1));
        let mut read = 0usize;
        loop {
            let page = api.list(&params).await.map_err(|cause| Error::List {
                kind: kind.plural.to_string(),
                cause,
            })?;
            let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            for object in page.items {
                objects.push(kind.slim_value(object));
                read += 1;
            }
            progress(kind, read);
            match next {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(objects)
}
