//! Periodic audits and `tollgate serve --cluster` keep the cluster in memory
//! instead of relisting: one kube-runtime reflector per kind (the audit's
//! [`super::kinds::KINDS`], the webhook's [`super::kinds::webhook_kinds`]), fed by a watcher whose
//! initial list is paginated and whose events are slimmed before they are
//! stored. A watch that breaks is resumed with backoff (and relisted only when
//! the API server says its resourceVersion is too old). A first list refused
//! for lack of permission (401/403) fails [`Watches::ready`] at once instead
//! of retrying forever: that needs RBAC fixed, not patience.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::describe;
use super::kinds::{Kind, to_value};

/// The reflectors of every kind.
pub struct Watches {
    stores: Vec<(Kind, Store<DynamicObject>)>,
    tasks: Vec<JoinHandle<()>>,
    events: Arc<AtomicU64>,
    refused: tokio::sync::watch::Receiver<Option<String>>,
}

/// The message of a first list refused for lack of permission.
fn refusal(kind: &Kind, error: &watcher::Error) -> Option<String> {
    match error {
        watcher::Error::InitialListFailed(e @ kube::Error::Api(status))
            if matches!(status.code, 401 | 403) =>
        {
            Some(format!("cannot list {}: {}", kind.plural, describe(e)))
        }
        _ => None,
    }
}

impl Watches {
    /// Start watching `kinds` (`page_size` objects per initial list page).
    pub fn start(client: &Client, page_size: u32, kinds: &[Kind]) -> Self {
        let events = Arc::new(AtomicU64::new(0));
        let (refuse, refused) = tokio::sync::watch::channel(None);
        let refuse = Arc::new(refuse);
        let mut stores = Vec::new();
        let mut tasks = Vec::new();
        for kind in kinds {
            let resource = kind.api_resource();
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let writer = reflector::store::Writer::new(resource);
            stores.push((*kind, writer.as_reader()));
            let config = watcher::Config::default().page_size(page_size.max(1));
            let counter = events.clone();
            let refuse = refuse.clone();
            let kind = *kind;
            let stream = watcher(api, config)
                .default_backoff()
                .modify(move |object: &mut DynamicObject| kind.slim(object))
                .reflect(writer);
            tasks.push(tokio::spawn(async move {
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(_) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if let Some(message) = refusal(&kind, &e) {
                                refuse.send_replace(Some(message));
                            }
                            tracing::warn!(kind = kind.plural, error = %e, "watch failed; retrying");
                        }
                    }
                }
            }));
        }
        Watches {
            stores,
            tasks,
            events,
            refused,
        }
    }

    /// Wait until every kind has been listed once.
    ///
    /// # Errors
    /// A first list refused for lack of permission, or a reflector that
    /// stopped before its first list completed.
    pub async fn ready(&self) -> Result<(), String> {
        let all_listed = async {
            for (kind, store) in &self.stores {
                store.wait_until_ready().await.map_err(|_| {
                    format!("the {} watch stopped before its first list", kind.plural)
                })?;
            }
            Ok(())
        };
        let mut refused = self.refused.clone();
        tokio::select! {
            listed = all_listed => listed,
            Ok(message) = refused.wait_for(Option::is_some) => {
                Err(message.clone().unwrap_or_default())
            }
        }
    }

    /// Watch events (list pages and changes) seen so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// The objects currently known, as the evaluation reads them: kind by
    /// kind, each sorted by namespace and name as a list returns them (a
    /// store's own order is arbitrary).
    pub fn objects(&self) -> Vec<Value> {
        let mut objects = Vec::new();
        for (_, store) in &self.stores {
            let mut state = store.state();
            state.sort_by(|a, b| {
                (&a.metadata.namespace, &a.metadata.name)
                    .cmp(&(&b.metadata.namespace, &b.metadata.name))
            });
            objects.extend(state.iter().map(|object| to_value(object)));
        }
        objects
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
