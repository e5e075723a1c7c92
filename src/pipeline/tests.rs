//! The order of the phases, the response filters and the logging step, driven through
//! [`Pipeline::handle`] with in-memory request bodies (no client connection). Requests that go
//! upstream reach a small HTTP/1.1 server on loopback.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;

use http::header;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;

use super::*;
use crate::config::spec;
use crate::edge::endpoints;
use crate::lifecycle::Lifecycle;

type Req = Full<Bytes>;

/// What the logging step saw, one entry per call.
#[derive(Default)]
struct Recorder(Mutex<Vec<(Option<u16>, &'static str, u64)>>);

impl Recorder {
    fn seen(&self) -> Vec<(Option<u16>, &'static str, u64)> {
        self.0.lock().expect("lock").clone()
    }
}

impl Sink for Recorder {
    fn log(&self, ctx: &RequestCtx) {
        self.0.lock().expect("lock").push((
            ctx.status.map(|s| s.as_u16()),
            ctx.outcome.as_str(),
            ctx.bytes_out,
        ));
    }
}

struct Harness {
    pipeline: Pipeline<Req>,
    log: Arc<Recorder>,
    _life: Lifecycle,
}

fn harness(env: &[(&str, &str)]) -> Harness {
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = Settings::load(None, &|k| map.get(k).cloned(), &[]).expect("settings");
    let life = Lifecycle::new();
    let log = Arc::new(Recorder::default());
    let pipeline = Pipeline::new(&settings, log.clone(), None, life.shutdown()).expect("pipeline");
    Harness {
        pipeline,
        log,
        _life: life,
    }
}

fn conn(listener: Listener) -> ConnInfo {
    let tls = (listener == Listener::Https).then_some("TLSv1.3");
    ConnInfo::new("127.0.0.1:40000".parse().expect("addr"), listener, tls)
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Req> {
    let mut b = Request::builder().uri(path).header("host", "localhost");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).expect("request")
}

async fn send(h: &Harness, listener: Listener, req: Request<Req>) -> Response<ResponseBody<Req>> {
    h.pipeline.handle(&conn(listener), req).await
}

/// Reads the body to the end and drops the response, which runs the logging step.
async fn body(resp: Response<ResponseBody<Req>>) -> String {
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A Mattermost stand-in on loopback answering `200 {"ok":true}` to everything.
async fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// A server that accepts connections and never answers.
async fn silent_upstream() -> (String, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (url, listener)
}

/// One request allowed, then refused; CORS on for one origin.
fn strict() -> Vec<(&'static str, &'static str)> {
    vec![
        (spec::RATE_LIMIT_QPS.env, "1"),
        (spec::RATE_LIMIT_BURST.env, "0"),
        (spec::CORS_DOMAINS.env, "https://app.example"),
    ]
}

#[tokio::test]
async fn health_comes_before_the_limits_and_costs_nothing() {
    let up = upstream().await;
    let mut env: Vec<(&str, &str)> = strict();
    env.push((spec::UPSTREAMS.env, &up));
    let h = harness(&env);
    for _ in 0..5 {
        let resp = send(&h, Listener::Https, get(endpoints::HEALTH_PATH, &[])).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("x-ratelimit-limit").is_none());
        assert_eq!(body(resp).await, "ok\n");
    }
    // The bucket is still full: the one request a burst of 0 allows passes.
    let resp = send(&h, Listener::Https, get("/api/v4/users/me", &[])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ratelimit-limit"], "1");
    body(resp).await;
    let resp = send(&h, Listener::Https, get("/api/v4/users/me", &[])).await;
    assert_eq!(resp.status(), 429);
}

#[tokio::test]
async fn preflights_are_never_limited_and_429_carries_cors_and_rate_headers() {
    let h = harness(&strict());
    let origin = [("origin", "https://app.example")];
    // The first request takes the only cell (and goes to an unreachable default upstream).
    let first = send(&h, Listener::Https, get("/api/v4/x", &origin)).await;
    assert_ne!(first.status(), 429);
    body(first).await;
    let refused = send(&h, Listener::Https, get("/api/v4/x", &origin)).await;
    assert_eq!(refused.status(), 429);
    let hdr = refused.headers();
    assert_eq!(hdr["access-control-allow-origin"], "https://app.example");
    assert_eq!(hdr["x-ratelimit-remaining"], "0");
    assert!(hdr.contains_key(header::RETRY_AFTER));
    assert!(hdr.contains_key(header::STRICT_TRANSPORT_SECURITY));
    assert_eq!(body(refused).await, crate::answer::RATE_LIMITED_BODY);
    for _ in 0..3 {
        let pre = Request::builder()
            .header("host", "localhost")
            .method("OPTIONS")
            .uri("/api/v4/x")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = send(&h, Listener::Https, pre).await;
        assert_eq!(resp.status(), 200, "preflight answered, not limited");
        assert_eq!(
            resp.headers()["access-control-allow-methods"],
            "POST",
            "a preflight answer"
        );
        assert!(resp.headers().get("x-ratelimit-limit").is_none());
        body(resp).await;
    }
}

#[tokio::test]
async fn requests_the_rfcs_refuse_come_first() {
    let h = harness(&[]);
    let no_host = Request::builder()
        .uri(endpoints::HEALTH_PATH)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = send(&h, Listener::Https, no_host).await;
    assert_eq!(resp.status(), 400, "before the health endpoint");
    let text = body(resp).await;
    assert!(text.contains("without a Host header"), "{text}");
    assert_eq!(
        h.log.seen(),
        [(Some(400), "bad_request", text.len() as u64)]
    );
}

#[tokio::test]
async fn the_plain_listener_redirects_after_its_health_endpoint() {
    let h = harness(&[(spec::HOST.env, "chat.example.com")]);
    let resp = send(&h, Listener::Http, get("/login?x=1", &[])).await;
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()[header::LOCATION],
        "https://chat.example.com/login?x=1"
    );
    assert!(
        resp.headers()
            .get(header::STRICT_TRANSPORT_SECURITY)
            .is_none(),
        "no HSTS over plain HTTP"
    );
    body(resp).await;
    let resp = send(&h, Listener::Http, get(endpoints::HEALTH_PATH, &[])).await;
    assert_eq!(resp.status(), 200);
    body(resp).await;
    let seen = h.log.seen();
    assert_eq!(seen[0].0, Some(301));
    assert_eq!(seen[0].1, "redirect");
    assert_eq!(seen[1].1, "health");
}

#[tokio::test]
async fn proxied_responses_get_every_filter_and_are_logged_once() {
    let up = upstream().await;
    let h = harness(&[
        (spec::UPSTREAMS.env, &up),
        (spec::CORS_DOMAINS.env, "https://app.example"),
    ]);
    let resp = send(
        &h,
        Listener::Https,
        get("/api/v4/system/ping", &[("origin", "https://app.example")]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let hdr = resp.headers();
    assert_eq!(hdr["access-control-allow-origin"], "https://app.example");
    assert_eq!(hdr["x-ratelimit-limit"], "101");
    assert!(hdr.contains_key(header::STRICT_TRANSPORT_SECURITY));
    assert!(h.log.seen().is_empty(), "logged only once the body is done");
    assert_eq!(body(resp).await, "{\"ok\":true}");
    assert_eq!(h.log.seen(), [(Some(200), "proxied", 11)]);
}

#[tokio::test]
async fn every_answer_is_logged_exactly_once() {
    // Connections are refused, the answer is a 502: this test holds port P on 127.0.0.1 (so no
    // other test is given it) and nothing listens on 127.0.0.2:P.
    let guard = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!(
        "http://127.0.0.2:{}",
        guard.local_addr().expect("addr").port()
    );
    let h = harness(&[(spec::UPSTREAMS.env, &dead), (spec::MAX_BODY.env, "1K")]);
    let resp = send(&h, Listener::Https, get("/api/v4/x", &[])).await;
    assert_eq!(resp.status(), 502);
    body(resp).await;
    let big = Request::builder()
        .header("host", "localhost")
        .method("POST")
        .uri("/api/v4/files")
        .header("content-length", "2048")
        .body(Full::new(Bytes::from(vec![b'x'; 2048])))
        .expect("request");
    let resp = send(&h, Listener::Https, big).await;
    assert_eq!(resp.status(), 413);
    // A response dropped unread still logs.
    drop(resp);
    let seen = h.log.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].0, seen[0].1), (Some(502), "upstream_refused"));
    assert_eq!((seen[1].0, seen[1].1), (Some(413), "too_large"));
}

#[tokio::test]
async fn a_request_abandoned_before_its_answer_is_logged_as_client_closed() {
    let (url, _held) = silent_upstream().await;
    let h = harness(&[(spec::UPSTREAMS.env, &url)]);
    let c = conn(Listener::Https);
    let mut pending = Box::pin(h.pipeline.handle(&c, get("/api/v4/x", &[])));
    // One poll starts the request (it now waits on the silent server); then it is dropped, as
    // hyper drops it when the client goes away.
    assert!(futures_util::poll!(pending.as_mut()).is_pending());
    drop(pending);
    assert_eq!(h.log.seen(), [(None, "client_closed", 0)]);
}
