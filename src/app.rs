//! Wiring: settings -> logging -> the chosen action. Exit codes: 0 success, 1 failure at run
//! time (health check failed), 2 unusable configuration.

use std::process::ExitCode;
use std::sync::Arc;

use hyper::body::Incoming;
use tracing::{info, warn};

use crate::config::cli::{Action, Cli};
use crate::config::{spec, AccessLogTarget, CertSource, Settings, Source, TlsMode};
use crate::edge::Edge;
use crate::lifecycle::Lifecycle;
use crate::mattermost::{EdgeFacts, Targets};
use crate::observe::access_log::AccessLog;
use crate::observe::metrics::Metrics;
use crate::pipeline::access::Observer;
use crate::pipeline::{Pipeline, ResponseBody};
use crate::server::{self, listener, Signals};
use crate::tls::{self, CertStore, Origin};

/// Exit code for an unusable configuration.
pub const EXIT_CONFIG: u8 = 2;

/// Runs the parsed command line to completion.
pub fn main(cli: Cli) -> ExitCode {
    let environment = match cli.environment() {
        Ok(e) => e,
        Err(e) => return config_error(e),
    };
    let env = |name: &str| environment.get(name);
    let mut settings = match Settings::load(cli.config.as_deref(), &env, &cli.overrides) {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    init_logging(&settings.log.level);
    let upload = follow_upload_limit(&mut settings, &env);
    let runtime = match runtime(settings.server.workers) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mm-edge: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.action {
        Action::Check => check(&settings, &upload, &env),
        Action::WriteMattermostConfig => match write_mattermost(&settings, &env) {
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
        Action::Run => {
            if let Some(warning) = &upload.warning {
                warn!("{warning}");
            }
            runtime.block_on(run(settings, &cli, &env))
        }
    }
}

/// What the body limit became, given Mattermost's upload limit.
struct UploadLimit {
    /// Mattermost's limit and where it was read, when known.
    mattermost: Option<(u64, String)>,
    /// An explicit body limit below it.
    warning: Option<String>,
}

/// The body limit follows Mattermost's upload limit (`FileSettings.MaxFileSize`) unless given.
fn follow_upload_limit(
    settings: &mut Settings,
    env: &dyn Fn(&str) -> Option<String>,
) -> UploadLimit {
    let mattermost = crate::mattermost::max_file_size(&Targets::from_settings(settings), env);
    let warning = mattermost.as_ref().and_then(|(size, from)| {
        let needed = settings.proxy.follow_upload_limit(*size)?;
        Some(format!(
            "{} is below Mattermost's upload limit ({from} = {size} bytes, plus {} MiB of multipart framing = {needed} bytes): uploads Mattermost allows will get 413 at the edge; raise {} to at least {needed} or unset it",
            settings.describe(&spec::MAX_BODY),
            crate::config::UPLOAD_OVERHEAD >> 20,
            spec::MAX_BODY.env,
        ))
    });
    UploadLimit {
        mattermost,
        warning,
    }
}

/// The async runtime: with one worker, a single-threaded scheduler (less bookkeeping than the
/// multi-thread one, whose single-worker form showed no gain on HTTP/1.1); otherwise one worker
/// thread per `workers`.
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
fn check(
    settings: &Settings,
    upload: &UploadLimit,
    env: &dyn Fn(&str) -> Option<String>,
) -> ExitCode {
    if let Err(e) = Edge::new(settings) {
        return config_error(e);
    }
    if let (true, CertSource::Files { .. }) = (settings.terminates_tls(), &settings.tls.cert) {
        if let Err(e) = CertStore::from_settings(settings, false) {
            return config_error(e);
        }
    }
    let acme = tls::acme::decide(settings);
    if acme.is_on() {
        if let Err(problem) =
            tls::acme::client::Connector::new(settings.tls.acme.ca_roots.as_deref())
        {
            return config_error(settings.error(&spec::ACME_CA_ROOTS, problem));
        }
    }
    println!(
        "# mm-edge {}: effective settings",
        env!("CARGO_PKG_VERSION")
    );
    for raw in settings.layers().iter() {
        let from = match &raw.source {
            Source::Default => "default".to_string(),
            Source::Env => format!("env {}", raw.setting.env),
            Source::File(p, line) => format!("file {} line {line}", p.display()),
            Source::Cli => format!("flag --{}", raw.setting.flag()),
        };
        println!(
            "{} = {:?}  # {from}",
            raw.setting.key,
            raw.setting.shown(&raw.value)
        );
    }
    println!("# acme: {acme}");
    if let Some(cert) = tls::acme::state::State::new(&settings.state_dir).read_cert() {
        println!(
            "# acme certificate: names {}, issuer {}, expires {}",
            cert.names.join(","),
            cert.issuer,
            tls::acme::rfc3339(cert.not_after)
        );
    }
    println!("# site URL: {}", settings.site.url);
    match &upload.mattermost {
        Some((size, from)) => println!(
            "# body limit: {} bytes (Mattermost's upload limit: {size} bytes, from {from})",
            settings.proxy.max_body
        ),
        None => println!("# body limit: {} bytes", settings.proxy.max_body),
    }
    if let Some(warning) = &upload.warning {
        println!("# warning: {warning}");
    }
    match crate::mattermost::preview(&EdgeFacts::from_settings(settings), env) {
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
fn write_mattermost(
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), crate::mattermost::Error> {
    let facts = EdgeFacts::from_settings(settings);
    let outcome = crate::mattermost::write(&Targets::from_settings(settings), &facts, env)?;
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

/// The certificate store, when TLS is terminated here (`acme`: whether ACME runs).
fn certificates(
    settings: &Settings,
    acme: bool,
) -> Result<Option<(Arc<CertStore>, Origin)>, tls::TlsError> {
    if !settings.terminates_tls() {
        return Ok(None);
    }
    let (store, origin) = CertStore::from_settings(settings, acme)?;
    if acme && matches!(origin, Origin::SelfSigned(..)) {
        info!(cert = %origin, "serving the self-signed stand-in until the ACME certificate is issued");
    } else if matches!(origin, Origin::SelfSigned(..)) {
        warn!(
            cert = %origin,
            "serving a SELF-SIGNED certificate: browsers will warn; set {} and {} for production",
            spec::TLS_CERT.env,
            spec::TLS_KEY.env
        );
    }
    Ok(Some((Arc::new(store), origin)))
}

async fn run(mut settings: Settings, cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    if let Err(e) = Edge::new(&settings) {
        return config_error(e);
    }
    // The ACME client's platform verifier asks for the process's default provider.
    let _ = rustls::crypto::CryptoProvider::install_default((*tls::provider()).clone());
    let acme = tls::acme::decide(&settings);
    let certs = match certificates(&settings, acme.is_on()) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let acme = match (&certs, acme.is_on()) {
        (Some((store, _)), true) => {
            let state = tls::acme::state::State::new(&settings.state_dir);
            let names = tls::acme::names(&settings);
            let challenges = Arc::new(tls::acme::Challenges::new(&state, names, tls::provider()));
            info!(acme = %acme, directory = %settings.tls.acme.directory, "ACME certificates");
            match tls::acme::Manager::new(&settings, store.clone(), challenges.clone()) {
                Ok(manager) => Some((manager, challenges)),
                Err(e) => return config_error(e),
            }
        }
        _ => None,
    };
    let tls_config = match &certs {
        Some((store, _)) => match tls::server_config(
            store.clone(),
            acme.as_ref().map(|(_, challenges)| challenges.clone()),
        ) {
            Ok(config) => Some(config),
            Err(e) => return config_error(e),
        },
        None => None,
    };
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mm-edge: error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let specs = listener::specs(&settings, tls_config);
    let bound = match listener::bind(&settings, specs) {
        Ok(b) => b,
        Err(e) => return config_error(e),
    };
    let addr_of = |role| bound.iter().find(|b| b.role == role).map(|b| b.addr);
    let (https_addr, http_addr, metrics_addr) = (
        addr_of(crate::conn::Listener::Https),
        addr_of(crate::conn::Listener::Http),
        addr_of(crate::conn::Listener::Metrics),
    );
    settings.set_bound_ports(
        https_addr.unwrap_or(settings.listen.https),
        http_addr.unwrap_or(settings.listen.http),
    );
    if let Err(e) = write_mattermost(&settings, env) {
        return config_error(e);
    }

    let mut life = Lifecycle::new();
    let (access_log, log_writer) = match AccessLog::start(&settings.log.access) {
        Ok(pair) => pair,
        Err(e) => {
            return config_error(settings.error(
                &spec::ACCESS_LOG,
                format!("cannot open it ({e}); give a writable file, stdout or off"),
            ))
        }
    };
    if let AccessLogTarget::File(_) = settings.log.access {
        let (log, mut reloads) = (access_log.clone(), signals.reloads());
        life.spawn("access log reopen", move |mut shutdown| async move {
            loop {
                tokio::select! {
                    changed = reloads.changed() => match changed {
                        Ok(()) => log.reopen(),
                        Err(_) => return,
                    },
                    _ = shutdown.requested() => return,
                }
            }
        });
    }
    let metrics = settings
        .metrics
        .listen
        .map(|_| Arc::new(Metrics::new(access_log.dropped_counter())));
    if let Some((store, _)) = &certs {
        let (store, reloads) = (store.clone(), signals.reloads());
        let expiry = metrics.as_ref().map(|m| m.certificate_expiry.clone());
        let reloaded = move |key: &rustls::sign::CertifiedKey| {
            if let (Some(g), Some(t)) = (&expiry, tls::expiry(key)) {
                g.set(t);
            }
        };
        life.spawn("certificate reload", move |shutdown| {
            tls::reload_service(store, reloads, reloaded, shutdown)
        });
    }
    let challenges = acme.as_ref().map(|(_, c)| c.clone());
    if let Some((manager, _)) = acme {
        let expiry = metrics.as_ref().map(|m| m.certificate_expiry.clone());
        let manager = manager.on_new(Box::new(move |key: &rustls::sign::CertifiedKey| {
            if let (Some(g), Some(t)) = (&expiry, tls::expiry(key)) {
                g.set(t);
            }
        }));
        life.spawn("acme", move |shutdown| manager.run(shutdown));
    }
    let observer = Observer::new(access_log, settings.log.access_format, metrics.clone());
    let pipeline = match Pipeline::<Incoming>::new(
        &settings,
        Arc::new(observer),
        metrics.clone(),
        life.shutdown(),
    ) {
        Ok(p) => Arc::new(match challenges {
            Some(c) => p.with_acme(c),
            None => p,
        }),
        Err(e) => return config_error(e),
    };
    let (fallbacks, redis_up) = metrics.as_ref().map_or_else(Default::default, |m| {
        (
            m.rate_limit_redis_fallbacks.clone(),
            m.rate_limit_redis_up.clone(),
        )
    });
    pipeline.edge().connect_shared(fallbacks, redis_up);
    let upstreams = pipeline.upstreams().clone();
    let on_change = crate::reload::upstream_gauges(&upstreams, metrics.as_ref());
    if !settings.upstream.health_interval.is_zero() {
        let checks = upstreams.checks(&settings.upstream, on_change);
        life.spawn("upstream health checks", move |shutdown| {
            crate::upstream::health::run(checks, shutdown)
        });
    }
    let reload = crate::reload::Reload {
        cli: cli.clone(),
        started: settings.clone(),
        upstreams,
        metrics: metrics.clone(),
    };
    let reloads = signals.reloads();
    life.spawn("settings reload", move |shutdown| {
        reload.run(reloads, shutdown)
    });
    if let (Some(m), Some((store, _))) = (&metrics, &certs) {
        if let Some(expiry) = tls::expiry(&store.current()) {
            m.certificate_expiry.set(expiry);
        }
    }
    announce(
        &settings,
        [https_addr, http_addr, metrics_addr],
        certs.as_ref().map(|c| &c.1),
    );

    let max_connections = server::limits::max_connections(
        settings.server.max_connections,
        server::limits::raise_open_files(),
    );
    let serving = {
        let cfg = settings.server.clone();
        let shutdown = life.shutdown();
        tokio::spawn(async move {
            server::serve(&cfg, bound, pipeline, max_connections, metrics, shutdown).await
        })
    };
    signals.stop_requested().await;
    info!(grace = ?settings.server.shutdown_grace, "shutting down: no new connections, draining in-flight requests");
    life.begin_shutdown();
    let _ = serving.await;
    life.stop(settings.server.shutdown_grace).await;
    log_writer.stop();
    ExitCode::SUCCESS
}

/// The pipeline answers the server's requests.
impl server::Handler for Pipeline<Incoming> {
    type Body = ResponseBody<Incoming>;
    type Error = crate::body::BoxError;

    fn handle(
        &self,
        conn: &crate::conn::ConnInfo,
        req: http::Request<Incoming>,
    ) -> impl std::future::Future<Output = http::Response<Self::Body>> + Send {
        Pipeline::handle(self, conn, req)
    }
}

/// The start-up line (tests and admins read the addresses from it).
fn announce(
    settings: &Settings,
    [https, http, metrics]: [Option<std::net::SocketAddr>; 3],
    cert: Option<&Origin>,
) {
    let upstreams: Vec<String> = settings
        .upstream
        .servers
        .iter()
        .map(ToString::to_string)
        .collect();
    let tls_desc = match (cert, settings.site.https, settings.tls.mode) {
        (Some(_), _, _) => "terminated here",
        (None, true, TlsMode::Off) => "off (terminated in front; Mattermost told https)",
        _ => "off (plain HTTP site)",
    };
    info!(
        https = %https.map_or("off".to_string(), |a| a.to_string()),
        http = %http.map_or("?".to_string(), |a| a.to_string()),
        metrics = %metrics.map_or("off".to_string(), |a| a.to_string()),
        upstreams = %upstreams.join(","),
        tls = tls_desc,
        cert = %cert.map_or("none".to_string(), ToString::to_string),
        site_url = %settings.site.url,
        rate_limit = settings.rate_limit.enable,
        workers = settings.server.workers,
        "mm-edge listening"
    );
}
