//! SIGHUP: the settings are read again exactly as at start (the same TOML file, env file and
//! flags, through [`Cli::load`]). The upstream list changes while serving (servers added, and
//! removed ones drained without cutting a request or a WebSocket); any other setting that
//! changed is named in a warning, because it takes effect only after a restart. Settings that
//! do not load are refused as a whole, with their error, and nothing changes.
//!
//! The other SIGHUP work (certificates read again, the access log reopened) is done by the
//! tasks that own it, on the same signal.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::cli::Cli;
use crate::config::layers::{Raw, Source};
use crate::config::{spec, Settings};
use crate::lifecycle::Shutdown;
use crate::observe::metrics::Metrics;
use crate::upstream::health::OnChange;
use crate::upstream::{Changes, Upstreams};

/// The reload task's inputs.
pub struct Reload<B> {
    /// How the settings were given.
    pub cli: Cli,
    /// The settings running (what "changed" is measured against).
    pub started: Settings,
    /// The servers, whose list a reload replaces.
    pub upstreams: Arc<Upstreams<B>>,
    /// Where removed servers' gauges are dropped.
    pub metrics: Option<Arc<Metrics>>,
}

impl<B: Send + Sync + 'static> Reload<B> {
    /// Reloads on every change of `reloads` until shutdown.
    pub async fn run(self, mut reloads: watch::Receiver<u64>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                changed = reloads.changed() => if changed.is_err() { return },
                _ = shutdown.requested() => return,
            }
            self.once();
        }
    }

    /// One reload; returns what changed in the list (nothing when the settings are refused).
    pub fn once(&self) -> Option<Changes> {
        let settings = match self.cli.load() {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "SIGHUP: settings not reloaded (fix them and send SIGHUP again); the upstream servers stay as they were");
                return None;
            }
        };
        let changes = self.upstreams.replace(&settings.upstream.servers);
        let list = self.upstreams.names().join(",");
        if changes.added.is_empty() && changes.removed.is_empty() {
            info!(upstreams = %list, "SIGHUP: upstream servers unchanged");
        } else {
            let join = |v: &[Arc<str>]| v.join(",");
            info!(
                upstreams = %list,
                added = %join(&changes.added),
                removed = %join(&changes.removed),
                "SIGHUP: upstream servers changed (removed ones finish their requests and WebSockets, then close)"
            );
        }
        if let Some(m) = &self.metrics {
            for name in &changes.removed {
                m.forget_upstream(name);
            }
        }
        let restart = changed_settings(&self.started, &settings);
        if !restart.is_empty() {
            warn!(
                settings = %restart.join(","),
                "SIGHUP: these settings changed but take effect only after a restart"
            );
        }
        Some(changes)
    }
}

/// The metrics' `mm_edge_upstream_up`: every server starts up, each change is set, servers
/// added later start up too. Also what the health checks report to.
pub fn upstream_gauges<B>(
    upstreams: &Upstreams<B>,
    metrics: Option<&Arc<Metrics>>,
) -> Option<OnChange> {
    let m = metrics?.clone();
    for name in upstreams.names() {
        m.upstream_up(&name).set(1);
    }
    let f: OnChange = Arc::new(move |name: &str, up: bool| {
        m.upstream_up(name).set(i64::from(up));
    });
    upstreams.on_change(f.clone());
    Some(f)
}

/// The keys of the settings whose value differs, the upstream list excepted (it is reloaded).
fn changed_settings(started: &Settings, now: &Settings) -> Vec<&'static str> {
    spec::SETTINGS
        .iter()
        .filter(|s| s.key != spec::UPSTREAMS.key)
        .filter(|s| normal(&started.layers().get(s)) != normal(&now.layers().get(s)))
        .map(|s| s.key)
        .collect()
}

/// A value as text, a TOML string without its quotes, so that a value moved between the file
/// and the environment does not count as changed (other TOML values still compare as written).
fn normal(raw: &Raw) -> String {
    if let Source::File(..) = raw.source {
        if let Ok(toml::Value::String(s)) = raw.value.parse::<toml::Value>() {
            return s;
        }
    }
    raw.value.clone()
}
