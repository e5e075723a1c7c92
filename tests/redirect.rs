//! The plain listener redirects to the configured site URL: 301 for GET/HEAD, 308 otherwise,
//! path and query kept, the client's Host header ignored.

mod common;

use common::{Backend, Edge};

#[tokio::test]
async fn get_and_head_get_301_with_path_and_query() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MATTERMOST_HOST", "chat.example.com")]);
    let port = edge.https.expect("tls").port();
    let client = edge.client();
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let resp = client
            .request(
                method.clone(),
                edge.http_url("/login/sso/saml?redirect_to=%2Fteam&x=1"),
            )
            .header("Host", "evil.example")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 301, "{method}");
        assert_eq!(
            resp.headers()["location"],
            format!("https://chat.example.com:{port}/login/sso/saml?redirect_to=%2Fteam&x=1")
                .as_str()
        );
    }
    assert_eq!(backend.requests(), 0, "redirects never reach Mattermost");
}

#[tokio::test]
async fn other_methods_get_308_to_the_configured_site_url() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[("MATTERMOST_SITE_URL", "https://mm.example.org")],
    );
    let client = edge.client();
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let resp = client
            .request(method.clone(), edge.http_url("/api/v4/users/login?a=b"))
            .body("{}")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 308, "{method}");
        assert_eq!(
            resp.headers()["location"],
            "https://mm.example.org/api/v4/users/login?a=b"
        );
    }
}

#[tokio::test]
async fn health_endpoint_answers_on_the_plain_listener() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let resp = edge.get(&edge.http_url("/.mm-edge/healthz")).await;
    assert_eq!(resp.status(), 200);
}
