//! The process signals mm-edge reacts to: SIGTERM and SIGINT stop it; SIGHUP asks for a reload,
//! which whoever can reload (the certificate store today) picks up as a background task.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tracing::info;

/// The signal handlers, installed before mm-edge announces that it listens so that a signal
/// arriving right after start-up is never lost to the default action.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    reloads: watch::Sender<u64>,
}

impl Signals {
    /// Installs the handlers for SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            reloads: watch::channel(0).0,
        })
    }

    /// A receiver that changes on every SIGHUP.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Waits for SIGTERM or SIGINT, passing each SIGHUP on to the reload receivers.
    pub async fn stop_requested(&mut self) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    if self.reloads.receiver_count() == 0 {
                        info!("SIGHUP: nothing to reload (TLS is not terminated here)");
                    }
                    self.reloads.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        }
    }
}
