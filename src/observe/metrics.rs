//! Prometheus metrics, encoded by `prometheus-client`. The request path only does atomic adds
//! on handles made in advance (or made once, on the first request of a label set, then cached):
//! no lock, no label hashing per request. Label sets stay bounded: the route group, never the
//! raw path.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Label values of the route groups, in index order (see `pipeline::route`).
pub const ROUTES: [&str; 6] = ["websocket", "files", "plugins", "api", "static", "other"];
/// Methods counted by name; every other method is `other`.
pub const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
];
/// Status codes with a cached counter; others go through the family's lock (rare codes).
const CODES: [u16; 34] = [
    101, 200, 201, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409, 410,
    411, 413, 414, 415, 422, 429, 431, 499, 500, 501, 502, 503, 504, 507, 505,
];
/// Histogram buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

type Labels = Vec<(&'static str, String)>;

/// A histogram of durations with fixed buckets, all atomics (prometheus-client's own takes a
/// lock per observation).
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug, Default)]
struct HistogramInner {
    /// Per bucket (not cumulative), plus one for above the last.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

impl prometheus_client::metrics::TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BUCKETS.len() + 1);
        for (i, count) in self.0.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), cumulative));
        }
        let sum = self.0.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, cumulative, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A counter read from an atomic owned elsewhere (the access log's dropped lines).
#[derive(Debug)]
struct ExternalCounter(Arc<AtomicU64>);

impl EncodeMetric for ExternalCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0.load(Ordering::Relaxed), None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Every metric the edge exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    /// `requests` handles by (route, method, code slot), made on first use.
    request_handles: Box<[OnceLock<Counter>]>,
    durations: [Histogram; ROUTES.len()],
    /// Time to Mattermost's response head.
    pub upstream_response: Histogram,
    /// Requests refused by the rate limiter.
    pub rate_limited: Counter,
    /// Sign-in attempts refused by the login limit.
    pub login_limited: Counter,
    /// Failed sign-ins (Mattermost answered 401/403) counted by the login limit.
    pub login_failures: Counter,
    /// Limit decisions made in this process because the shared Redis failed.
    pub rate_limit_redis_fallbacks: Counter,
    /// Whether every connection to the shared Redis answers (1) or not (0).
    pub rate_limit_redis_up: Gauge,
    /// Open client connections, by protocol.
    connections: Family<Labels, Gauge>,
    /// Open WebSocket tunnels.
    pub websocket_tunnels: Gauge,
    /// HTTPS HTTP/1.1 connections parked between requests.
    pub connections_parked: Gauge,
    /// Body bytes from clients.
    pub bytes_in: Counter,
    /// Body bytes to clients.
    pub bytes_out: Counter,
    /// Up (1) or skipped (0), per Mattermost server.
    upstream_up: Family<Labels, Gauge>,
    upstream_errors: Family<Labels, Counter>,
    /// TLS handshakes that failed.
    pub tls_handshake_failures: Counter,
    /// Connections closed for a missing, malformed or untrusted PROXY header.
    pub proxy_protocol_rejected: Counter,
    /// When the served certificate expires (Unix seconds).
    pub certificate_expiry: Gauge,
}

impl Metrics {
    /// Registers every metric; `dropped_lines` is the access log's counter.
    pub fn new(dropped_lines: Arc<AtomicU64>) -> Self {
        let mut root = Registry::default();
        // Process metrics keep their standard names; everything else is mm_edge_*.
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("mm_edge");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route group, method and status",
            requests.clone(),
        );
        let by_route = Family::<Labels, Histogram>::default();
        // Each handle shares its atomics with the family's entry.
        let durations: [Histogram; ROUTES.len()] =
            ROUTES.map(|route| by_route.get_or_create_owned(&vec![("route", route.to_string())]));
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response's end, by route group",
            by_route,
        );
        let upstream_response = Histogram::default();
        registry.register(
            "upstream_response_seconds",
            "Time from a request's arrival to Mattermost's response head",
            upstream_response.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Requests refused by the rate limiter",
            rate_limited.clone(),
        );
        let login_limited = Counter::default();
        registry.register(
            "login_limited",
            "Sign-in attempts refused by the login limit",
            login_limited.clone(),
        );
        let login_failures = Counter::default();
        registry.register(
            "login_failures",
            "Failed sign-ins (401 or 403 from Mattermost) counted by the login limit",
            login_failures.clone(),
        );
        let rate_limit_redis_fallbacks = Counter::default();
        registry.register(
            "rate_limit_redis_fallbacks",
            "Rate- and login-limit decisions made by this edge alone because the shared Redis failed or was slow",
            rate_limit_redis_fallbacks.clone(),
        );
        let rate_limit_redis_up = Gauge::default();
        registry.register(
            "rate_limit_redis_up",
            "Whether every connection to the shared Redis answers (1) or not (0); 0 without Redis",
            rate_limit_redis_up.clone(),
        );
        let connections = Family::<Labels, Gauge>::default();
        registry.register(
            "connections_open",
            "Open client connections, by protocol",
            connections.clone(),
        );
        let connections_parked = Gauge::default();
        registry.register(
            "connections_parked",
            "HTTPS HTTP/1.1 connections parked between requests (holding no HTTP buffers)",
            connections_parked.clone(),
        );
        let websocket_tunnels = Gauge::default();
        registry.register(
            "websocket_tunnels_open",
            "Open WebSocket tunnels",
            websocket_tunnels.clone(),
        );
        let bytes = Family::<Labels, Counter>::default();
        let bytes_in = bytes.get_or_create_owned(&vec![("direction", "in".to_string())]);
        let bytes_out = bytes.get_or_create_owned(&vec![("direction", "out".to_string())]);
        registry.register("bytes", "Body bytes, from (in) and to (out) clients", bytes);
        let upstream_up = Family::<Labels, Gauge>::default();
        registry.register(
            "upstream_up",
            "Whether a Mattermost server takes requests (1) or is skipped after failing (0)",
            upstream_up.clone(),
        );
        let upstream_errors = Family::<Labels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failed requests to a Mattermost server, by kind",
            upstream_errors.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let proxy_protocol_rejected = Counter::default();
        registry.register(
            "proxy_protocol_rejected",
            "Connections closed for a missing, malformed or untrusted PROXY protocol header",
            proxy_protocol_rejected.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the served certificate expires, Unix time",
            certificate_expiry.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            ExternalCounter(dropped_lines),
        );
        let request_handles = (0..ROUTES.len() * METHODS.len() * CODES.len())
            .map(|_| OnceLock::new())
            .collect();
        Self {
            registry: root,
            requests,
            request_handles,
            durations,
            upstream_response,
            rate_limited,
            login_limited,
            login_failures,
            rate_limit_redis_fallbacks,
            rate_limit_redis_up,
            connections,
            websocket_tunnels,
            connections_parked,
            bytes_in,
            bytes_out,
            upstream_up,
            upstream_errors,
            tls_handshake_failures,
            proxy_protocol_rejected,
            certificate_expiry,
        }
    }

    /// Counts one answered request and its duration.
    pub fn request(&self, route: usize, method: &http::Method, code: u16, took: Duration) {
        let m = method_index(method);
        let route = route.min(ROUTES.len() - 1);
        if let Some(h) = self.durations.get(route) {
            h.observe(took);
        }
        match CODES.iter().position(|&c| c == code) {
            Some(c) => {
                let slot = (route * METHODS.len() + m) * CODES.len() + c;
                if let Some(cell) = self.request_handles.get(slot) {
                    cell.get_or_init(|| self.requests.get_or_create_owned(&labels(route, m, code)))
                        .inc();
                }
            }
            None => {
                self.requests.get_or_create(&labels(route, m, code)).inc();
            }
        }
    }

    /// The gauge of open client connections for `protocol` (`http1`, `http2`); made once per
    /// protocol by the server.
    pub fn connections(&self, protocol: &'static str) -> Gauge {
        self.connections
            .get_or_create_owned(&vec![("protocol", protocol.to_string())])
    }

    /// The up/down gauge of a Mattermost server.
    pub fn upstream_up(&self, server: &str) -> Gauge {
        self.upstream_up
            .get_or_create_owned(&vec![("server", server.to_string())])
    }

    /// Drops the up/down gauge of a server removed from the list (its error counts stay).
    pub fn forget_upstream(&self, server: &str) {
        self.upstream_up
            .remove(&vec![("server", server.to_string())]);
    }

    /// Counts a failed request to `server` (`kind`: refused, timeout, busy, error).
    pub fn upstream_error(&self, server: &str, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&vec![
                ("server", server.to_string()),
                ("kind", kind.to_string()),
            ])
            .inc();
    }

    /// The text exposition for `GET /metrics`, in Prometheus's text format (version 0.0.4),
    /// which every Prometheus and `promtool check metrics` read.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        prometheus_text(&out)
    }
}

/// OpenMetrics (what prometheus-client writes) as Prometheus text: a counter's `HELP` and
/// `TYPE` name its `_total` samples, and there is no `# EOF` or `# UNIT` line.
fn prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let mut help: Option<&str> = None;
    for line in open_metrics.lines() {
        if line.starts_with("# HELP ") {
            help = Some(line);
            continue;
        }
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let shown = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some(h) = help.take() {
                let text = h
                    .strip_prefix("# HELP ")
                    .and_then(|h| h.strip_prefix(name))
                    .unwrap_or("");
                out.push_str(&format!("# HELP {shown}{text}\n"));
            }
            out.push_str(&format!("# TYPE {shown} {kind}\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn labels(route: usize, method: usize, code: u16) -> Labels {
    vec![
        ("route", ROUTES[route].to_string()),
        ("method", METHODS[method].to_string()),
        ("code", code.to_string()),
    ]
}

fn method_index(m: &http::Method) -> usize {
    METHODS[..7]
        .iter()
        .position(|&name| name == m.as_str())
        .unwrap_or(7)
}

/// The process metrics Prometheus users expect, read from /proc at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        encoder
            .encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&p.cpu_seconds, None)?;
        encoder
            .encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&p.rss_bytes)?;
        encoder
            .encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&p.open_fds)?;
        encoder
            .encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&p.start_time)?;
        Ok(())
    }
}

/// Figures about this process from /proc.
struct ProcessStats {
    cpu_seconds: f64,
    rss_bytes: u64,
    open_fds: u64,
    start_time: f64,
}

impl ProcessStats {
    fn read() -> Option<Self> {
        let tick = rustix::param::clock_ticks_per_second() as f64;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let rest = stat.rsplit_once(") ")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        let (utime, stime, start_ticks) = (num(11)?, num(12)?, num(19)?);
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let boot: u64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(Self {
            cpu_seconds: (utime + stime) as f64 / tick,
            rss_bytes: rss_pages * rustix::param::page_size() as u64,
            open_fds,
            start_time: boot as f64 + start_ticks as f64 / tick,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_exactly_with_bounded_labels() {
        let m = Metrics::new(Arc::new(AtomicU64::new(0)));
        for _ in 0..5 {
            m.request(3, &http::Method::GET, 200, Duration::from_millis(3));
        }
        m.request(
            3,
            &http::Method::from_bytes(b"PURGE").expect("m"),
            418,
            Duration::ZERO,
        );
        let text = m.encode();
        assert!(
            text.contains(
                "mm_edge_http_requests_total{route=\"api\",method=\"GET\",code=\"200\"} 5"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "mm_edge_http_requests_total{route=\"api\",method=\"other\",code=\"418\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "mm_edge_http_request_duration_seconds_bucket{le=\"0.005\",route=\"api\"} 6"
            ) || text.contains(
                "mm_edge_http_request_duration_seconds_bucket{route=\"api\",le=\"0.005\"} 6"
            ),
            "{text}"
        );
        assert!(text.contains("process_open_fds"), "{text}");
    }
}
