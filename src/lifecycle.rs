//! Shutdown and background work: one signal every long-lived task watches, and one way to run a
//! background task (certificate reload now; health checks and renewals later) that stops with the
//! process.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::debug;

/// A handle that tells a task when shutdown has begun. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown has been requested (or the lifecycle is gone). Cancel-safe.
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

/// The process's shutdown signal and its background tasks.
#[derive(Debug)]
pub struct Lifecycle {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A lifecycle with no tasks yet.
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: JoinSet::new(),
        }
    }

    /// A handle for a task that must stop on shutdown.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.stop.subscribe())
    }

    /// Runs a background task; it gets a [`Shutdown`] and is expected to return soon after it
    /// fires. Tasks still running at [`Lifecycle::stop`] are aborted there.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = task(self.shutdown());
        self.tasks.spawn(async move {
            fut.await;
            debug!(task = name, "background task finished");
        });
    }

    /// Signals shutdown to every task and connection watching it.
    pub fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Signals shutdown, then waits for the background tasks (aborting those that outlive it).
    pub async fn stop(mut self, grace: std::time::Duration) {
        self.begin_shutdown();
        if tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn background_tasks_see_shutdown_and_are_joined() {
        let mut life = Lifecycle::new();
        let saw = Arc::new(AtomicBool::new(false));
        let flag = saw.clone();
        life.spawn("test", move |mut shutdown| async move {
            shutdown.requested().await;
            flag.store(true, Ordering::SeqCst);
        });
        let handle = life.shutdown();
        assert!(!handle.is_requested());
        life.stop(std::time::Duration::from_secs(60)).await;
        assert!(saw.load(Ordering::SeqCst), "the task ran to its end");
        assert!(handle.is_requested());
    }
}
