use super::*;
use crate::config::value::{Cidrs, Kind};
use http::HeaderValue;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn lb() -> ClientIp {
    ClientIp::new(&Cidrs::parse("10.0.0.0/8 fd00::/8").unwrap())
}

#[test]
fn without_trusted_proxies_the_peer_is_the_client() {
    let resolver = ClientIp::new(&[]);
    let h = headers(&[
        ("x-forwarded-for", "203.0.113.7"),
        ("x-real-ip", "203.0.113.8"),
    ]);
    assert_eq!(resolver.resolve(ip("198.51.100.1"), &h), ip("198.51.100.1"));
    assert_eq!(resolver.resolve(ip("2001:db8::1"), &h), ip("2001:db8::1"));
}

#[test]
fn spoofed_headers_from_an_untrusted_peer_are_ignored() {
    let h = headers(&[
        ("x-forwarded-for", "1.1.1.1, 10.0.0.2"),
        ("x-real-ip", "1.1.1.2"),
    ]);
    assert_eq!(lb().resolve(ip("198.51.100.1"), &h), ip("198.51.100.1"));
}

#[test]
fn trusted_peer_rightmost_untrusted_forwarded_for_entry_wins() {
    // The client put 6.6.6.6 in front; the proxies appended the real client and each other.
    let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.7"));
}

#[test]
fn forwarded_for_lines_are_walked_from_the_last() {
    let h = headers(&[
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-for", "203.0.113.7, 10.9.9.9"),
        ("x-forwarded-for", "10.1.1.1"),
    ]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.7"));
    let h = headers(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "10.1.1.1"),
    ]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
}

#[test]
fn trusted_peer_falls_back_to_real_ip_then_peer() {
    let h = headers(&[("x-real-ip", "203.0.113.8")]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.8"));
    // All forwarded-for entries trusted: X-Real-IP, then the peer.
    let h = headers(&[
        ("x-forwarded-for", "10.2.2.2, 10.3.3.3"),
        ("x-real-ip", "203.0.113.8"),
    ]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.8"));
    let h = headers(&[("x-forwarded-for", "10.2.2.2")]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    assert_eq!(
        lb().resolve(ip("10.0.0.1"), &HeaderMap::new()),
        ip("10.0.0.1")
    );
    // Several X-Real-IP lines: the nearest hop's (last) one.
    let h = headers(&[("x-real-ip", "6.6.6.6"), ("x-real-ip", "203.0.113.8")]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.8"));
}

#[test]
fn garbage_ends_the_walk() {
    // Garbage left of the client is never reached.
    let h = headers(&[("x-forwarded-for", "not-an-ip, 203.0.113.7")]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.7"));
    // Garbage right of it stops the walk: X-Real-IP or the peer, never 203.0.113.7.
    let h = headers(&[("x-forwarded-for", "203.0.113.7, bogus, 10.1.1.1")]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    let h = headers(&[
        ("x-forwarded-for", "203.0.113.7,,10.1.1.1"),
        ("x-real-ip", "198.51.100.9"),
    ]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("198.51.100.9"));
    for junk in [
        "",
        " ",
        "1.2.3",
        "fe80::1%eth0",
        "999.1.1.1",
        "[1.2.3.4]",
        "unknown",
    ] {
        let h = headers(&[("x-forwarded-for", junk), ("x-real-ip", junk)]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"), "{junk:?}");
    }
    // Non-text bytes (obs-text) in the header.
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"203.0.113.7\xff").unwrap(),
    );
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
}

#[test]
fn ports_and_brackets_are_accepted() {
    let cases = [
        ("203.0.113.7:4711", "203.0.113.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("  2001:db8::7\t", "2001:db8::7"),
    ];
    for (entry, want) in cases {
        let h = headers(&[("x-forwarded-for", entry)]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip(want), "{entry}");
    }
}

#[test]
fn ipv6_proxies_and_clients() {
    let h = headers(&[("x-forwarded-for", "2001:db8::7, fd00::2")]);
    assert_eq!(lb().resolve(ip("fd00::1"), &h), ip("2001:db8::7"));
    // An untrusted IPv6 peer keeps its own address.
    assert_eq!(lb().resolve(ip("2001:db8::1"), &h), ip("2001:db8::1"));
    // Mixed families in one chain.
    let h = headers(&[("x-forwarded-for", "2001:db8::7, 10.0.0.5")]);
    assert_eq!(lb().resolve(ip("fd00::1"), &h), ip("2001:db8::7"));
}

#[test]
fn ipv4_mapped_addresses_count_as_ipv4() {
    // Mapped peer inside an IPv4 trusted range is trusted.
    let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.7, ::ffff:10.1.1.1")]);
    assert_eq!(lb().resolve(ip("::ffff:10.0.0.1"), &h), ip("203.0.113.7"));
    // An untrusted mapped peer is reported as IPv4.
    assert_eq!(
        lb().resolve(ip("::ffff:198.51.100.1"), &h),
        ip("198.51.100.1")
    );
    let h = headers(&[("x-real-ip", "::ffff:203.0.113.8")]);
    assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.8"));
    // A trusted network written in mapped form matches IPv4 peers.
    let mapped = ClientIp::new(&Cidrs::parse("::ffff:192.168.0.0/112").unwrap());
    let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
    assert_eq!(mapped.resolve(ip("192.168.3.4"), &h), ip("203.0.113.7"));
}
