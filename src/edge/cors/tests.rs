use super::*;

fn cors(domains: &str) -> Cors {
    cors_with(domains, "", false)
}

fn cors_with(domains: &str, exposed: &str, credentials: bool) -> Cors {
    let cfg = CorsSettings {
        domains: vec![domains.to_owned()],
        exposed_headers: vec![exposed.to_owned()],
        allow_credentials: credentials,
    };
    match Cors::new(&cfg) {
        Ok(Some(c)) => c,
        other => panic!("{domains:?}: expected a policy, got {other:?}"),
    }
}

fn allowed(c: &Cors, origin: &str) -> bool {
    c.is_origin_allowed(&HeaderValue::from_str(origin).expect("test origin"))
}

fn invalid(domains: &str) -> CorsError {
    let cfg = CorsSettings {
        domains: vec![domains.to_owned()],
        ..CorsSettings::default()
    };
    match Cors::new(&cfg) {
        Err(e) => e,
        Ok(other) => panic!("{domains:?}: expected an error, got {other:?}"),
    }
}

fn request(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("test name"),
            HeaderValue::from_str(v).expect("test value"),
        );
    }
    h
}

fn values(h: &HeaderMap, name: HeaderName) -> Vec<&str> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect()
}

fn sorted_names(h: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names
}

#[test]
fn policy_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cors>();
}

#[test]
fn empty_domains_disable_cors() {
    for domains in [vec![], vec![String::new()], vec!["  \t ".to_owned()]] {
        let cfg = CorsSettings {
            domains,
            exposed_headers: vec!["X-Anything".into()],
            allow_credentials: true,
        };
        assert!(matches!(Cors::new(&cfg), Ok(None)));
    }
}

#[test]
fn exact_origins_match_case_insensitively() {
    let c = cors("https://Chat.Example.com  http://localhost:8065");
    assert!(allowed(&c, "https://chat.example.com"));
    assert!(allowed(&c, "HTTPS://CHAT.EXAMPLE.COM"));
    assert!(allowed(&c, "http://localhost:8065"));
    assert!(!allowed(&c, "http://chat.example.com"), "scheme differs");
    assert!(
        !allowed(&c, "https://chat.example.com:8443"),
        "port differs"
    );
    assert!(!allowed(&c, "http://localhost"), "port missing");
    assert!(!allowed(&c, "http://localhost:80651"), "longer port");
    assert!(!allowed(&c, "https://chat.example.com.evil.com"));
    assert!(!allowed(&c, "https://evilchat.example.com"));
    assert!(!allowed(&c, "https://chat.example.co"));
    assert!(!allowed(&c, "null"));
    assert!(!allowed(&c, ""));
}

#[test]
fn entries_may_be_split_across_elements() {
    let cfg = CorsSettings {
        domains: vec!["https://a.example".into(), "https://b.example  ".into()],
        ..CorsSettings::default()
    };
    let c = Cors::new(&cfg).ok().flatten().expect("policy");
    assert!(allowed(&c, "https://a.example"));
    assert!(allowed(&c, "https://b.example"));
}

#[test]
fn star_anywhere_allows_every_origin() {
    let c = cors("https://a.example * https://b.example");
    assert!(allowed(&c, "https://anything.test"));
    assert!(allowed(&c, "null"));
    assert!(!allowed(&c, ""), "an empty Origin is never allowed");
}

#[test]
fn wildcard_matches_by_prefix_and_suffix() {
    let c = cors("https://*.example.com");
    assert!(allowed(&c, "https://a.example.com"));
    assert!(allowed(&c, "https://a.b.example.com"));
    assert!(allowed(&c, "HTTPS://A.EXAMPLE.COM"));
    assert!(!allowed(&c, "https://example.com"), "no subdomain");
    assert!(!allowed(&c, "https://evil-example.com"), "near miss");
    assert!(!allowed(&c, "https://evilexample.com"));
    assert!(!allowed(&c, "http://a.example.com"), "scheme");
    assert!(
        !allowed(&c, "https://a.example.com.evil.com"),
        "suffix attack"
    );
    assert!(!allowed(&c, "https://a.example.com:8443"), "port");
    assert!(
        !allowed(&c, "https://evil.com/.example.com"),
        "path smuggling"
    );
    assert!(
        !allowed(&c, "https://user@x.example.com"),
        "userinfo smuggling"
    );
}

#[test]
fn wildcard_in_port_and_scheme() {
    let c = cors("http://localhost:* *://chat.example.com");
    assert!(allowed(&c, "http://localhost:3000"));
    assert!(
        allowed(&c, "http://localhost:"),
        "rs/cors: * matches zero characters"
    );
    assert!(!allowed(&c, "http://localhost"));
    assert!(!allowed(&c, "http://localhost.evil.com:3000"));
    assert!(allowed(&c, "https://chat.example.com"));
    assert!(allowed(&c, "http://chat.example.com"));
    assert!(
        !allowed(&c, "https://evil.chat.example.com"),
        "suffix starts at ://"
    );
}

#[test]
fn invalid_entries_are_rejected_with_the_entry_named() {
    let cases = [
        ("https://chat.example.com/", OriginProblem::HasPath),
        ("https://chat.example.com/api", OriginProblem::HasPath),
        ("chat.example.com", OriginProblem::NoScheme),
        ("*.example.com", OriginProblem::NoScheme),
        ("https://*.*.example.com", OriginProblem::TwoWildcards),
        ("**", OriginProblem::TwoWildcards),
        ("https://", OriginProblem::NoHost),
        ("https://:8443", OriginProblem::NoHost),
        ("https://a.example?x=1", OriginProblem::HasQueryOrFragment),
        ("https://a.example#top", OriginProblem::HasQueryOrFragment),
        ("https://me@a.example", OriginProblem::HasUserinfo),
        ("https://a.example:https", OriginProblem::BadPort),
        ("https://a.example:70000", OriginProblem::BadPort),
        ("https://a.example:", OriginProblem::BadPort),
        ("https://a,b.example", OriginProblem::BadHostChar(',')),
        ("1http://a.example", OriginProblem::BadScheme),
        ("://a.example", OriginProblem::BadScheme),
        ("https://bücher.example", OriginProblem::NotAscii),
        ("null", OriginProblem::NoScheme),
    ];
    for (entry, problem) in cases {
        let err = invalid(&format!("https://fine.example {entry}"));
        assert_eq!(
            err,
            CorsError::InvalidOrigin {
                entry: entry.to_owned(),
                problem
            },
            "{entry}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{entry:?} is not an origin: ")),
            "{msg}"
        );
        assert!(msg.contains(&format!("{entry:?}")), "{msg}");
    }
    assert_eq!(
        invalid("https://x.example/").to_string(),
        "\"https://x.example/\" is not an origin: has a path (an \
         origin is scheme://host[:port] only; drop everything from the first '/' after the \
         host, including a trailing '/')"
    );
}

#[test]
fn valid_entry_shapes_are_accepted() {
    let c = cors("http://127.0.0.1:8080 http://[::1]:3000 https://[::1] app://* http://*");
    assert!(allowed(&c, "http://127.0.0.1:8080"));
    assert!(allowed(&c, "http://[::1]:3000"));
    assert!(allowed(&c, "https://[::1]"));
    assert!(allowed(&c, "app://anything"));
    assert!(allowed(&c, "http://any.host:1234"));
    assert!(!allowed(&c, "https://any.host"));
}

#[test]
fn invalid_exposed_header_is_rejected() {
    let cfg = CorsSettings {
        domains: vec!["*".into()],
        exposed_headers: vec!["X-Good Bad(Header)".into()],
        allow_credentials: false,
    };
    let err = Cors::new(&cfg)
        .map(|_| ())
        .expect_err("invalid header name");
    assert_eq!(err.to_string(), "\"Bad(Header)\" is not a header name");
}

#[test]
fn non_preflights_are_not_answered() {
    let c = cors("*");
    let get = request(&[
        ("origin", "https://a.test"),
        ("access-control-request-method", "GET"),
    ]);
    assert!(c.preflight(&Method::GET, &get).is_none());
    let plain_options = request(&[("origin", "https://a.test")]);
    assert!(c.preflight(&Method::OPTIONS, &plain_options).is_none());
    let empty_acrm = request(&[
        ("origin", "https://a.test"),
        ("access-control-request-method", ""),
    ]);
    assert!(c.preflight(&Method::OPTIONS, &empty_acrm).is_none());
}

#[test]
fn preflight_from_allowed_origin() {
    let c = cors_with("https://*.example.com", "X-Ignored-On-Preflight", false);
    let req = request(&[
        ("origin", "https://App.example.com"),
        ("access-control-request-method", "PUT"),
        (
            "access-control-request-headers",
            "content-type,x-requested-with",
        ),
    ]);
    let (status, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sorted_names(&h),
        [
            "access-control-allow-headers",
            "access-control-allow-methods",
            "access-control-allow-origin",
            "access-control-max-age",
            "vary"
        ]
    );
    assert_eq!(
        values(&h, VARY),
        ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"]
    );
    assert_eq!(
        values(&h, ACCESS_CONTROL_ALLOW_ORIGIN),
        ["https://App.example.com"]
    );
    assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_METHODS), ["PUT"]);
    assert_eq!(
        values(&h, ACCESS_CONTROL_ALLOW_HEADERS),
        ["content-type,x-requested-with"]
    );
    assert_eq!(values(&h, ACCESS_CONTROL_MAX_AGE), ["86400"]);
}

#[test]
fn preflight_with_credentials_and_split_request_headers() {
    let c = cors_with("https://a.test", "", true);
    let req = request(&[
        ("origin", "https://a.test"),
        ("access-control-request-method", "DELETE"),
        ("access-control-request-headers", "x-one"),
        ("access-control-request-headers", "x-two"),
    ]);
    let (_, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
    assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_CREDENTIALS), ["true"]);
    assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_HEADERS), ["x-one", "x-two"]);
}

#[test]
fn preflight_without_request_headers_has_no_allow_headers() {
    let c = cors("https://a.test");
    let req = request(&[
        ("origin", "https://a.test"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", ""),
    ]);
    let (_, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
    assert!(h.get(ACCESS_CONTROL_ALLOW_HEADERS).is_none());
    assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_METHODS), ["POST"]);
}

#[test]
fn refused_preflights_get_only_vary() {
    let c = cors_with("https://*.example.com", "X-Exposed", true);
    let refused = [
        // origin not in the list
        request(&[
            ("origin", "https://evil-example.com"),
            ("access-control-request-method", "GET"),
        ]),
        // no origin at all
        request(&[("access-control-request-method", "GET")]),
        // method not allowed (and methods are case-sensitive, as in rs/cors)
        request(&[
            ("origin", "https://a.example.com"),
            ("access-control-request-method", "CONNECT"),
        ]),
        request(&[
            ("origin", "https://a.example.com"),
            ("access-control-request-method", "patch"),
        ]),
    ];
    for req in &refused {
        let (status, h) = c.preflight(&Method::OPTIONS, req).expect("preflight");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sorted_names(&h), ["vary"], "{req:?}");
    }
}

#[test]
fn preflight_allows_every_listed_method_and_options() {
    let c = cors("*");
    for m in ALLOWED_METHODS.iter().chain(&["OPTIONS"]) {
        let req = request(&[
            ("origin", "https://a.test"),
            ("access-control-request-method", m),
        ]);
        let (_, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
        assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_METHODS), [*m]);
    }
}

#[test]
fn star_sends_star_without_credentials_and_echoes_with_them() {
    let req = request(&[
        ("origin", "https://Somewhere.test"),
        ("access-control-request-method", "GET"),
    ]);
    let (_, h) = cors_with("*", "", false)
        .preflight(&Method::OPTIONS, &req)
        .expect("preflight");
    assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_ORIGIN), ["*"]);
    assert!(h.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());

    let c = cors_with("*", "", true);
    let (_, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
    assert_eq!(
        values(&h, ACCESS_CONTROL_ALLOW_ORIGIN),
        ["https://Somewhere.test"]
    );
    assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_CREDENTIALS), ["true"]);

    let mut resp = HeaderMap::new();
    c.apply_actual(&Method::GET, req.get(ORIGIN), &mut resp);
    assert_eq!(
        values(&resp, ACCESS_CONTROL_ALLOW_ORIGIN),
        ["https://Somewhere.test"]
    );
    assert_eq!(values(&resp, ACCESS_CONTROL_ALLOW_CREDENTIALS), ["true"]);
}

fn upstream_with_cors_headers() -> HeaderMap {
    request(&[
        ("content-type", "application/json"),
        ("vary", "Accept-Encoding"),
        ("access-control-allow-origin", "*"),
        ("access-control-allow-origin", "https://other.test"),
        ("access-control-expose-headers", "X-Upstream"),
        ("access-control-allow-credentials", "false"),
        ("access-control-allow-methods", "GET"),
        ("access-control-allow-headers", "*"),
        ("access-control-max-age", "5"),
    ])
}

#[test]
fn actual_response_headers_replace_upstream_ones() {
    let c = cors_with("https://a.test", "x-request-id  X-VERSION-ID", true);
    let origin = HeaderValue::from_static("https://a.test");
    let mut resp = upstream_with_cors_headers();
    c.apply_actual(&Method::POST, Some(&origin), &mut resp);
    assert_eq!(
        sorted_names(&resp),
        [
            "access-control-allow-credentials",
            "access-control-allow-origin",
            "access-control-expose-headers",
            "content-type",
            "vary"
        ]
    );
    assert_eq!(
        values(&resp, ACCESS_CONTROL_ALLOW_ORIGIN),
        ["https://a.test"]
    );
    assert_eq!(
        values(&resp, ACCESS_CONTROL_EXPOSE_HEADERS),
        ["X-Request-Id, X-Version-Id"]
    );
    assert_eq!(values(&resp, ACCESS_CONTROL_ALLOW_CREDENTIALS), ["true"]);
    assert_eq!(values(&resp, VARY), ["Accept-Encoding", "Origin"]);
}

#[test]
fn actual_response_without_expose_or_credentials_config() {
    let c = cors("https://a.test");
    let origin = HeaderValue::from_static("https://a.test");
    let mut resp = upstream_with_cors_headers();
    c.apply_actual(&Method::GET, Some(&origin), &mut resp);
    assert_eq!(
        sorted_names(&resp),
        ["access-control-allow-origin", "content-type", "vary"]
    );
}

#[test]
fn vary_origin_is_never_duplicated() {
    let c = cors("https://a.test");
    let origin = HeaderValue::from_static("https://a.test");
    for upstream_vary in ["Origin", "accept-encoding, ORIGIN", "*"] {
        let mut resp = request(&[("vary", upstream_vary)]);
        c.apply_actual(&Method::GET, Some(&origin), &mut resp);
        assert_eq!(values(&resp, VARY), [upstream_vary]);
        // Applying twice (e.g. a retried response) changes nothing either.
        c.apply_actual(&Method::GET, Some(&origin), &mut resp);
        assert_eq!(values(&resp, VARY), [upstream_vary]);
    }
}

#[test]
fn refused_or_missing_origin_gets_no_cors_headers_but_vary() {
    let c = cors_with("https://*.example.com", "X-Exposed", true);
    let evil = HeaderValue::from_static("https://evil-example.com");
    let empty = HeaderValue::from_static("");
    for origin in [Some(&evil), Some(&empty), None] {
        let mut resp = upstream_with_cors_headers();
        c.apply_actual(&Method::GET, origin, &mut resp);
        assert_eq!(sorted_names(&resp), ["content-type", "vary"], "{origin:?}");
        assert_eq!(values(&resp, VARY), ["Accept-Encoding", "Origin"]);
    }
}

#[test]
fn actual_request_with_unlisted_method_gets_no_cors_headers() {
    let c = cors("*");
    let origin = HeaderValue::from_static("https://a.test");
    let mut resp = HeaderMap::new();
    let propfind = Method::from_bytes(b"PROPFIND").expect("method");
    c.apply_actual(&propfind, Some(&origin), &mut resp);
    assert_eq!(sorted_names(&resp), ["vary"]);
    let mut resp = HeaderMap::new();
    c.apply_actual(&Method::OPTIONS, Some(&origin), &mut resp);
    assert_eq!(values(&resp, ACCESS_CONTROL_ALLOW_ORIGIN), ["*"]);
}
