//! Wiring: settings -> logging -> the chosen action. Exit codes: 0 success, 1 failure at run
//! time (health check failed), 2 unusable configuration.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::cli::{Action, Cli};
use crate::config::{CertSource, Layers, Settings, Source, TlsMode};
use crate::edge::Edge;
use crate::mattermost::{EdgeFacts, Targets};
use crate::proxy::Proxy;
use crate::server::{self, Handler};
use crate::tls::{self, CertStore};

/// Exit code for an unusable configuration.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the parsed command line to completion.
pub fn main(cli: Cli) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let (settings, layers) = match Settings::load(cli.config.as_deref(), &env, &cli.overrides) {
        Ok(ok) => ok,
        Err(e) => return config_error(e),
    };
    init_logging(&settings.log_level);
    let runtime = match runtime(settings.server.workers) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mm-edge: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.action {
        Action::Check => check(&settings, &layers),
        Action::WriteMattermostConfig => match write_mattermost(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => config_error(e),
        },
        Action::Healthcheck => match runtime.block_on(crate::healthcheck::check(&settings)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mm-edge: unhealthy: {e}");
                ExitCode::FAILURE
            }
        },
        Action::Run => runtime.block_on(run(settings)),
    }
}

/// The async runtime: with one worker, a single-threaded scheduler, whose plain FIFO run queue
/// lets an HTTP/2 connection collect more finished streams per write (see server::coalesce);
/// otherwise one worker thread per `workers`.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("mm-edge: error: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn init_logging(filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// `mm-edge check`: validate everything that can be validated without serving.
fn check(settings: &Settings, layers: &Layers) -> ExitCode {
    if let Err(e) = Edge::new(settings) {
        return config_error(e);
    }
    if let (true, CertSource::Files { .. }) = (settings.terminates_tls(), &settings.tls.cert) {
        if let Err(e) = CertStore::load(settings, tls::provider()) {
            return config_error(e);
        }
    }
    println!(
        "# mm-edge {}: effective settings",
        env!("CARGO_PKG_VERSION")
    );
    for raw in layers.iter() {
        let from = match &raw.source {
            Source::Default => "default".to_string(),
            Source::Env => format!("env {}", raw.setting.env),
            Source::File(p) => format!("file {}", p.display()),
            Source::Cli => format!("flag --{}", raw.setting.flag()),
        };
        println!("{} = {:?}  # {from}", raw.setting.key, raw.value);
    }
    println!("# site URL: {}", settings.site.url);
    let env = |name: &str| std::env::var(name).ok();
    match crate::mattermost::preview(&edge_facts(settings), &env) {
        Ok((keys, warnings)) => {
            println!("# Mattermost keys written when a target is set (secrets redacted):");
            for k in keys {
                let value = if crate::mattermost::is_secret_key(k.key) {
                    "\"<redacted>\"".to_string()
                } else {
                    k.value.to_string()
                };
                println!("#   {}.{} = {value}  (from {})", k.section, k.key, k.source);
            }
            for w in warnings {
                println!("# warning: {w}");
            }
        }
        Err(e) => return config_error(e),
    }
    println!("# configuration OK");
    ExitCode::SUCCESS
}

/// Writes Mattermost's configuration to match the edge (no-op when no target is configured).
fn write_mattermost(settings: &Settings) -> Result<(), crate::mattermost::Error> {
    let facts = edge_facts(settings);
    let targets = Targets {
        config_file: settings.mattermost.config_file.as_deref(),
        env_file: settings.mattermost.env_file.as_deref(),
    };
    let outcome = crate::mattermost::write(&targets, &facts, &|k| std::env::var(k).ok())?;
    for (what, status) in [
        ("config file", &outcome.config_file),
        ("env file", &outcome.env_file),
    ] {
        if let Some(status) = status {
            info!(target = what, status = ?status, changed = outcome.changed_keys.len(), "Mattermost configuration written");
        }
    }
    Ok(())
}

/// The edge's own facts that Mattermost must agree with.
fn edge_facts(settings: &Settings) -> EdgeFacts {
    let rl = &settings.rate_limit;
    EdgeFacts {
        site_url: settings.site.url.clone(),
        cors_domains: settings.cors.domains.clone(),
        cors_exposed_headers: settings.cors.exposed_headers.clone(),
        cors_allow_credentials: settings.cors.allow_credentials,
        rate_limit_per_sec: rl.per_sec.get(),
        rate_limit_max_burst: rl.max_burst,
        rate_limit_sessions: u32::try_from(rl.sessions.get()).unwrap_or(u32::MAX),
        rate_limit_by_ip: rl.by_ip,
        rate_limit_headers: rl.headers.iter().map(ToString::to_string).collect(),
    }
}

/// Why `run` stopped before serving.
fn start_failed(e: impl std::fmt::Display) -> ExitCode {
    config_error(e)
}

async fn run(mut settings: Settings) -> ExitCode {
    let edge = match Edge::new(&settings) {
        Ok(edge) => edge,
        Err(e) => return start_failed(e),
    };
    let certs = if settings.terminates_tls() {
        match CertStore::load(&settings, tls::provider()) {
            Ok((store, origin)) => {
                if matches!(origin, tls::Origin::SelfSigned(..)) {
                    warn!(cert = %origin, "serving a SELF-SIGNED certificate: browsers will warn; set MM_EDGE_TLS_CERT and MM_EDGE_TLS_KEY for production");
                }
                let store = Arc::new(store);
                match tls::server_config(store.clone()) {
                    Ok(config) => Some((store, config, origin)),
                    Err(e) => return start_failed(e),
                }
            }
            Err(e) => return start_failed(e),
        }
    } else {
        None
    };
    let signals = match server::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mm-edge: error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = match server::bind(&settings).await {
        Ok(b) => b,
        Err(e) => return start_failed(e),
    };
    let (https_addr, http_addr) = bound.addrs();
    settings.set_bound_ports(
        https_addr.unwrap_or(settings.listen.https),
        http_addr.unwrap_or(settings.listen.http),
    );
    if let Err(e) = write_mattermost(&settings) {
        return start_failed(e);
    }
    let upstreams: Vec<String> = settings
        .upstream
        .servers
        .iter()
        .map(ToString::to_string)
        .collect();
    let tls_desc = match (&certs, settings.site.https, settings.tls.mode) {
        (Some(_), _, _) => "terminated here",
        (None, true, TlsMode::Off) => "off (terminated in front; Mattermost told https)",
        _ => "off (plain HTTP site)",
    };
    info!(
        https = %https_addr.map_or("off".to_string(), |a| a.to_string()),
        http = %http_addr.map_or("?".to_string(), |a| a.to_string()),
        upstreams = %upstreams.join(","),
        tls = tls_desc,
        cert = %certs.as_ref().map_or("none".to_string(), |c| c.2.to_string()),
        site_url = %settings.site.url,
        rate_limit = settings.rate_limit.enable,
        workers = settings.server.workers,
        "mm-edge listening"
    );
    let settings = Arc::new(settings);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let proxy = Arc::new(Proxy::new(&settings, edge, shutdown_rx));
    let redirect = Handler::Redirect(Arc::from(settings.site.origin.as_str()));
    server::serve(
        settings.clone(),
        bound,
        Handler::Proxy(proxy),
        redirect,
        certs.map(|(store, config, _)| (store, config)),
        shutdown_tx,
        signals,
    )
    .await;
    ExitCode::SUCCESS
}
