use std::collections::HashMap;

use super::*;

fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load(None, &|k| map.get(k).cloned(), &[])
}

fn err(env: &[(&str, &str)]) -> String {
    match load(env) {
        Ok(_) => panic!("expected an error for {env:?}"),
        Err(e) => e.to_string(),
    }
}

fn load_file(text: &str) -> Result<Settings, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("edge.toml");
    std::fs::write(&file, text).expect("write");
    Settings::load(Some(&file), &|_| None, &[]).map_err(|e| e.to_string())
}

#[test]
fn defaults_load() {
    let s = load(&[]).expect("defaults are valid");
    assert_eq!(s.site.url, "https://localhost");
    assert_eq!(s.listen.https.port(), 443);
    assert_eq!(s.proxy.max_body, 110 << 20);
    assert!(
        s.proxy.max_body > 104_857_600,
        "fits Mattermost's MaxFileSize"
    );
    assert_eq!(s.upstream.servers[0].to_string(), "http://127.0.0.1:8065");
    assert!(s.rate_limit.enable);
    assert!(s.terminates_tls());
}

#[test]
fn derived_site_url_carries_port() {
    let s = load(&[
        ("MATTERMOST_HOST", "chat.example.com"),
        ("MM_EDGE_HTTPS_LISTEN", "[::]:8443"),
    ])
    .expect("valid");
    assert_eq!(s.site.url, "https://chat.example.com:8443");
    assert_eq!(s.listen.https, "[::]:8443".parse().expect("addr"));
    let s = load(&[
        ("MATTERMOST_HTTPS", "false"),
        ("MM_EDGE_HTTP_LISTEN", "0.0.0.0:8080"),
    ])
    .expect("valid");
    assert_eq!(s.site.url, "http://localhost:8080");
}

#[test]
fn errors_name_the_variable_and_value() {
    let e = err(&[("MATTERMOST_RATE_LIMIT_QPS", "abc")]);
    assert!(e.starts_with("MATTERMOST_RATE_LIMIT_QPS=abc: "), "{e}");
    let e = err(&[("MATTERMOST_RATE_LIMIT_QPS", "0")]);
    assert!(e.contains("MATTERMOST_RATE_LIMIT_QPS=0"), "{e}");
    let e = err(&[("MATTERMOST_RATE_LIMIT_SESSIONS", "0")]);
    assert!(e.contains("MATTERMOST_RATE_LIMIT_SESSIONS=0"), "{e}");
    let e = err(&[("MATTERMOST_RATE_LIMIT_HEADERS", "X-Ok Bad:Name")]);
    assert!(e.contains("Bad:Name"), "{e}");
    let e = err(&[("MM_EDGE_TRUSTED_PROXIES", "10.0.0.0/8 nope")]);
    assert!(
        e.contains("MM_EDGE_TRUSTED_PROXIES") && e.contains("nope"),
        "{e}"
    );
    let e = err(&[("MM_EDGE_UPSTREAMS", "https://mm:8065")]);
    assert!(
        e.contains("MM_EDGE_UPSTREAMS") && e.contains("only http://"),
        "{e}"
    );
    let e = err(&[("MM_EDGE_HTTPS_LISTEN", "443")]);
    assert!(e.contains("MM_EDGE_HTTPS_LISTEN=443"), "{e}");
    let e = err(&[("MM_EDGE_MAX_BODY", "lots")]);
    assert!(e.contains("MM_EDGE_MAX_BODY=lots"), "{e}");
    let e = err(&[("MATTERMOST_SITE_URL", "http://chat.example.com")]);
    assert!(e.contains("must start with https://"), "{e}");
    let e = err(&[("MM_EDGE_TLS_CERT", "/x.pem")]);
    assert!(
        e.contains("MM_EDGE_TLS_KEY is not set") && e.contains("MM_EDGE_TLS_CERT=/x.pem"),
        "{e}"
    );
}

#[test]
fn layers_override_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a.toml");
    std::fs::write(
        &file,
        "[site]\nhost = \"file.example\"\n[rate_limit]\nper_sec = 5\nheaders = [\"X-A\", \"X-B\"]\n",
    )
    .expect("write");
    let env: HashMap<String, String> =
        [("MATTERMOST_RATE_LIMIT_QPS".to_string(), "7".to_string())].into();
    let flag = spec::by_key("site.host").expect("declared");
    let s = Settings::load(
        Some(&file),
        &|k| env.get(k).cloned(),
        &[(flag, "cli.example".into())],
    )
    .expect("valid");
    assert_eq!(s.site.host, "cli.example");
    assert_eq!(s.describe(&spec::HOST), "--site-host cli.example");
    assert_eq!(s.rate_limit.per_sec.get(), 7);
    assert_eq!(
        s.describe(&spec::RATE_LIMIT_QPS),
        "MATTERMOST_RATE_LIMIT_QPS=7"
    );
    assert_eq!(s.rate_limit.headers.len(), 2);
    let where_ = s.describe(&spec::RATE_LIMIT_HEADERS);
    assert!(
        where_.starts_with("rate_limit.headers = [\"X-A\", \"X-B\"] in ")
            && where_.ends_with("a.toml line 5"),
        "{where_}"
    );
    assert_eq!(
        s.describe(&spec::UPSTREAM_TIMEOUT),
        "MM_EDGE_UPSTREAM_TIMEOUT (default \"600s\")"
    );
}

#[test]
fn unknown_keys_are_refused_with_their_place() {
    let e = load_file("[site]\nhots = \"typo\"\n")
        .map(|_| ())
        .expect_err("typo");
    assert!(e.contains("unknown key `site.hots`"), "{e}");
    assert!(e.contains("line 2, column 1"), "{e}");
    let e = load_file("[sight]\nhost = \"x\"\n")
        .map(|_| ())
        .expect_err("typo");
    assert!(e.contains("unknown key `sight`"), "{e}");
    let e = load_file("stat_dir = \"/x\"\n")
        .map(|_| ())
        .expect_err("typo");
    assert!(e.contains("unknown key `stat_dir`"), "{e}");
}

#[test]
fn wrong_toml_types_are_errors_with_line_and_column() {
    let e = load_file("[site]\nhost = \"a.example\"\nhttps = \"true\"\n")
        .map(|_| ())
        .expect_err("string for a boolean");
    assert!(e.contains("edge.toml line 3, column 9"), "{e}");
    assert!(e.contains("site.https"), "{e}");
    assert!(e.contains("TOML boolean"), "{e}");
    let e = load_file("[rate_limit]\nper_sec = \"10\"\n")
        .map(|_| ())
        .expect_err("string for a number");
    assert!(
        e.contains("line 2") && e.contains("rate_limit.per_sec"),
        "{e}"
    );
    // A value of the right TOML type is still checked by its kind.
    let e = load_file("[rate_limit]\n\nper_sec = 0\n")
        .map(|_| ())
        .expect_err("zero rate");
    assert!(e.contains("line 3") && e.contains("above 0"), "{e}");
    let e = load_file("[upstream]\ntimeout = \"soon\"\n")
        .map(|_| ())
        .expect_err("bad duration");
    assert!(e.contains("upstream.timeout") && e.contains("30s"), "{e}");
    // Durations and sizes also take integers (seconds, bytes); lists also take a string.
    let s = load_file(
        "[upstream]\ntimeout = 5\nservers = \"http://a:1 http://b:2\"\n[proxy]\nmax_body = 2048\n",
    )
    .expect("valid");
    assert_eq!(s.upstream.timeout, std::time::Duration::from_secs(5));
    assert_eq!(s.upstream.servers.len(), 2);
    assert_eq!(s.proxy.max_body, 2048);
}

#[test]
fn every_declared_setting_is_read() {
    let map: HashMap<String, String> = HashMap::new();
    let lookup = |k: &str| map.get(k).cloned();
    let mut r = Resolver::new(&lookup, &[], None);
    let _ = r.take::<value::Text>(&spec::HOST, None);
    assert!(!r.unresolved().is_empty(), "the check sees unread settings");
    let s = load(&[]).expect("defaults");
    let recorded: Vec<&str> = s.layers().iter().map(|raw| raw.setting.key).collect();
    let declared: Vec<&str> = {
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys
    };
    assert_eq!(recorded, declared);
}

/// What the settings hold, without the record of where each value came from.
fn effective(s: &Settings) -> String {
    format!(
        "{:?} {:?}",
        (
            &s.state_dir,
            &s.site,
            &s.tls,
            &s.listen,
            &s.upstream,
            &s.proxy,
        ),
        (
            &s.server,
            &s.log,
            &s.metrics,
            &s.rate_limit,
            &s.login_limit,
            &s.client_ip,
            &s.cors,
            &s.mattermost,
        )
    )
}

#[test]
fn every_declared_setting_changes_the_effective_settings() {
    // A valid value unlike the default for each setting, and the settings it is compared
    // against (the value replaces its own there).
    let eab: &[(&str, &str)] = &[
        ("MM_EDGE_ACME_EAB_KID", "kid-0"),
        ("MM_EDGE_ACME_EAB_HMAC_KEY", "AQID"),
    ];
    let pair: &[(&str, &str)] = &[
        ("MM_EDGE_TLS_CERT", "/c.pem"),
        ("MM_EDGE_TLS_KEY", "/k.pem"),
    ];
    let redis: &[(&str, &str)] = &[("MM_EDGE_RATE_LIMIT_REDIS", "redis://redis:6379")];
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let values: &[Case] = &[
        ("MM_EDGE_STATE_DIR", "/srv/state", &[]),
        ("MATTERMOST_HOST", "chat.example.com", &[]),
        ("MATTERMOST_SITE_URL", "https://chat.example.org", &[]),
        ("MATTERMOST_HTTPS", "false", &[]),
        ("MM_EDGE_TLS", "off", &[]),
        ("MM_EDGE_TLS_CERT", "/c2.pem", pair),
        ("MM_EDGE_TLS_KEY", "/k2.pem", pair),
        ("MM_EDGE_HSTS_MAX_AGE", "60", &[]),
        ("MM_EDGE_ACME", "on", &[]),
        ("MM_EDGE_ACME_DIRECTORY", "letsencrypt-staging", &[]),
        ("MM_EDGE_ACME_EMAIL", "admin@example.com", &[]),
        ("MM_EDGE_ACME_CA_ROOTS", "/roots.pem", &[]),
        ("MM_EDGE_ACME_CHALLENGE", "http-01", &[]),
        ("MM_EDGE_ACME_EAB_KID", "kid-1", eab),
        ("MM_EDGE_ACME_EAB_HMAC_KEY", "AQIDBA", eab),
        ("MM_EDGE_HTTPS_LISTEN", "127.0.0.1:8443", &[]),
        ("MM_EDGE_HTTP_LISTEN", "127.0.0.1:8080", &[]),
        (
            "MM_EDGE_PROXY_PROTOCOL",
            "on",
            &[("MM_EDGE_TRUSTED_PROXIES", "10.1.0.0/16")],
        ),
        ("MM_EDGE_UPSTREAMS", "http://10.0.0.9:8065", &[]),
        ("MM_EDGE_UPSTREAM_TIMEOUT", "61s", &[]),
        ("MM_EDGE_UPSTREAM_CONNECT_TIMEOUT", "3s", &[]),
        ("MM_EDGE_UPSTREAM_IDLE_TIMEOUT", "7s", &[]),
        ("MM_EDGE_UPSTREAM_FAIL_TIMEOUT", "4s", &[]),
        ("MM_EDGE_UPSTREAM_MAX_CONNECTIONS", "77", &[]),
        ("MM_EDGE_UPSTREAM_HEALTH_INTERVAL", "0", &[]),
        ("MM_EDGE_UPSTREAM_HEALTH_FAILS", "3", &[]),
        ("MM_EDGE_UPSTREAM_HEALTH_PASSES", "4", &[]),
        ("MM_EDGE_MAX_BODY", "5M", &[]),
        ("MM_EDGE_WORKERS", "3", &[]),
        ("MM_EDGE_MAX_CONNECTIONS", "999", &[]),
        ("MM_EDGE_SHUTDOWN_GRACE", "9s", &[]),
        ("MM_EDGE_CLIENT_HEADER_TIMEOUT", "11s", &[]),
        ("MM_EDGE_KEEPALIVE_TIMEOUT", "12s", &[]),
        ("MM_EDGE_SEND_TIMEOUT", "13s", &[]),
        ("MM_EDGE_WEBSOCKET_IDLE_TIMEOUT", "14s", &[]),
        ("MM_EDGE_LOG", "debug", &[]),
        ("MM_EDGE_ACCESS_LOG", "off", &[]),
        ("MM_EDGE_ACCESS_LOG_FORMAT", "combined", &[]),
        ("MM_EDGE_METRICS_LISTEN", "127.0.0.1:9100", &[]),
        ("MATTERMOST_ENABLE_RATE_LIMIT", "false", &[]),
        ("MATTERMOST_RATE_LIMIT_QPS", "17", &[]),
        ("MATTERMOST_RATE_LIMIT_BURST", "170", &[]),
        ("MATTERMOST_RATE_LIMIT_SESSIONS", "1700", &[]),
        ("MATTERMOST_RATE_LIMIT_BY_IP", "false", &[]),
        ("MATTERMOST_RATE_LIMIT_HEADERS", "X-Team", &[]),
        ("MM_EDGE_RATE_LIMIT_IPV6_PREFIX", "56", &[]),
        (
            "MM_EDGE_RATE_LIMIT_REDIS",
            "redis://redis.example:6380/2",
            &[],
        ),
        ("MM_EDGE_RATE_LIMIT_REDIS_PASSWORD", "s3cret", redis),
        ("MM_EDGE_RATE_LIMIT_REDIS_TIMEOUT", "20ms", redis),
        ("MM_EDGE_LOGIN_LIMIT", "5/h", &[]),
        ("MM_EDGE_LOGIN_LIMIT_BURST", "4", &[]),
        ("MM_EDGE_LOGIN_LIMIT_SESSIONS", "400", &[]),
        ("MM_EDGE_TRUSTED_PROXIES", "10.1.0.0/16", &[]),
        ("MATTERMOST_CORS_DOMAINS", "https://a.example", &[]),
        ("MATTERMOST_CORS_EXPOSED_HEADERS", "X-Version-Id", &[]),
        ("MATTERMOST_CORS_ALLOW_CREDENTIALS", "true", &[]),
        ("MM_EDGE_MATTERMOST_CONFIG", "/mm/config.json", &[]),
        ("MM_EDGE_MATTERMOST_ENV_FILE", "/mm/mattermost.env", &[]),
    ];
    let mut missing: Vec<&str> = SETTINGS
        .iter()
        .map(|s| s.env)
        .filter(|env| !values.iter().any(|(e, _, _)| e == env))
        .collect();
    missing.sort_unstable();
    assert!(missing.is_empty(), "give these a value here: {missing:?}");
    for (env, value, with) in values {
        let mut given = with.to_vec();
        given.push((*env, *value));
        let base = effective(&load(with).unwrap_or_else(|e| panic!("{with:?}: {e}")));
        let changed = effective(&load(&given).unwrap_or_else(|e| panic!("{env}={value}: {e}")));
        assert_ne!(
            base, changed,
            "{env}={value} is declared but never read into the settings"
        );
    }
}

#[test]
fn login_rates_read_as_count_per_period() {
    use super::value::{Kind, LoginRate};
    use std::time::Duration;
    let rate = |t: &str| LoginRate::parse(t).map(|r| r.map(|r| (r.count.get(), r.period)));
    assert_eq!(rate("10/min"), Ok(Some((10, Duration::from_secs(60)))));
    assert_eq!(rate(" 3 / h "), Ok(Some((3, Duration::from_secs(3600)))));
    assert_eq!(rate("1/s"), Ok(Some((1, Duration::from_secs(1)))));
    assert_eq!(rate("off"), Ok(None));
    for bad in ["", "10", "0/min", "10/week", "-1/s", "ten/min"] {
        assert!(rate(bad).is_err(), "{bad}");
    }
    let r = LoginRate::parse("10/min").unwrap().unwrap();
    assert_eq!(r.interval(), Duration::from_secs(6));
}

#[test]
fn proxy_protocol_needs_trusted_proxies() {
    assert!(!load(&[]).expect("defaults").listen.proxy_protocol);
    let e = err(&[("MM_EDGE_PROXY_PROTOCOL", "on")]);
    assert!(
        e.starts_with("MM_EDGE_PROXY_PROTOCOL=on: ")
            && e.contains("MM_EDGE_TRUSTED_PROXIES (default \"\")")
            && e.contains("turn MM_EDGE_PROXY_PROTOCOL off"),
        "{e}"
    );
    let s = load(&[
        ("MM_EDGE_PROXY_PROTOCOL", "on"),
        ("MM_EDGE_TRUSTED_PROXIES", "10.0.0.5"),
    ])
    .expect("valid");
    assert!(s.listen.proxy_protocol);
    let e = err(&[("MM_EDGE_PROXY_PROTOCOL", "v2")]);
    assert!(
        e.contains("MM_EDGE_PROXY_PROTOCOL=v2: expected on or off"),
        "{e}"
    );
}

#[test]
fn redis_url_is_checked_and_its_password_never_shown() {
    let s = load(&[]).unwrap();
    assert!(s.rate_limit.redis.is_none(), "empty = in this process");
    let s = load(&[
        (
            "MM_EDGE_RATE_LIMIT_REDIS",
            "rediss://edge:pw@redis.example:6380/1",
        ),
        ("MM_EDGE_RATE_LIMIT_REDIS_TIMEOUT", "25ms"),
    ])
    .unwrap();
    let redis = s.rate_limit.redis.as_ref().expect("redis set");
    assert_eq!(redis.url, "rediss://edge:pw@redis.example:6380/1");
    assert_eq!(redis.timeout, std::time::Duration::from_millis(25));
    assert_eq!(redis.password, None);
    assert!(!format!("{redis:?}").contains("pw@"), "{redis:?}");
    let s = load(&[
        ("MM_EDGE_RATE_LIMIT_REDIS", "redis+unix:///run/redis.sock"),
        ("MM_EDGE_RATE_LIMIT_REDIS_PASSWORD", "s3cret"),
    ])
    .unwrap();
    let redis = s.rate_limit.redis.as_ref().expect("redis set");
    assert_eq!(redis.password.as_deref(), Some("s3cret"));
    assert!(!format!("{redis:?}").contains("s3cret"));
    for bad in [
        "http://redis:6379",
        "redis.example:6379",
        "redis://:pw@redis:notaport",
    ] {
        let e = err(&[("MM_EDGE_RATE_LIMIT_REDIS", bad)]);
        assert!(e.contains("MM_EDGE_RATE_LIMIT_REDIS="), "{e}");
        assert!(e.contains("expected redis://"), "{e}");
        assert!(!e.contains(":pw@"), "the password is not shown: {e}");
    }
    let e = err(&[("MM_EDGE_RATE_LIMIT_REDIS_TIMEOUT", "0")]);
    assert!(e.contains("MM_EDGE_RATE_LIMIT_REDIS_TIMEOUT=0"), "{e}");
}
