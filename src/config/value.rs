//! Value kinds: how a setting's text (environment, flag, built-in default) and its TOML value
//! become one typed value. Each kind has one parser used by every layer, so a value means the same
//! wherever it is given; in the TOML file a kind also says which TOML types it accepts (a boolean
//! setting takes `true`, not `"true"`).

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer};
use toml::Value as Toml;

use super::parse;

pub use acme::{
    decode_hmac, AcmeChallenge, AcmeDirectory, AcmeMode, Email, LETSENCRYPT, LETSENCRYPT_STAGING,
};
pub use flags::{Bool, OnOff};
pub use limits::{Ipv6Prefix, LoginBurst, LoginRate, Rate, RedisUrl};
pub use upstream::{Checks, Servers, UpstreamServer};

/// A kind of setting value.
pub trait Kind {
    /// The typed value.
    type Out;

    /// Parses the text form (environment variable, flag, built-in default).
    fn parse(text: &str) -> Result<Self::Out, String>;

    /// Converts a TOML value; by default a string, parsed like text.
    fn from_toml(value: Toml) -> Result<Self::Out, String> {
        match value {
            Toml::String(s) => Self::parse(&s),
            other => Err(format!(
                "expected a string, found {} {other}",
                other.type_str()
            )),
        }
    }
}

/// A TOML value of kind `K`, for the file structs (`Option<Spanned<V<K>>>`).
#[derive(Debug)]
pub struct V<K: Kind>(pub K::Out, PhantomData<K>);

impl<'de, K: Kind> Deserialize<'de> for V<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Toml::deserialize(d)?;
        K::from_toml(value)
            .map(|v| V(v, PhantomData))
            .map_err(serde::de::Error::custom)
    }
}

/// Any text, trimmed.
#[derive(Debug)]
pub struct Text;
impl Kind for Text {
    type Out = String;
    fn parse(text: &str) -> Result<String, String> {
        Ok(text.trim().to_string())
    }
}

/// A path; empty = not set.
#[derive(Debug)]
pub struct OptionalPath;
impl Kind for OptionalPath {
    type Out = Option<PathBuf>;
    fn parse(text: &str) -> Result<Option<PathBuf>, String> {
        let t = text.trim();
        Ok((!t.is_empty()).then(|| PathBuf::from(t)))
    }
}

/// A directory path that must be given.
#[derive(Debug)]
pub struct Dir;
impl Kind for Dir {
    type Out = PathBuf;
    fn parse(text: &str) -> Result<PathBuf, String> {
        match text.trim() {
            "" => Err("expected a directory path such as /var/lib/mm-edge".into()),
            t => Ok(PathBuf::from(t)),
        }
    }
}

/// `IP:PORT`.
#[derive(Debug)]
pub struct Addr;
impl Kind for Addr {
    type Out = SocketAddr;
    fn parse(text: &str) -> Result<SocketAddr, String> {
        text.trim()
            .parse()
            .map_err(|_| "expected IP:PORT, e.g. 0.0.0.0:443 or [::]:443".to_string())
    }
}

/// A duration: `250ms`, `30s`, `10m`, `2h`, `1d`; in TOML also an integer number of seconds.
#[derive(Debug)]
pub struct Dur;
impl Kind for Dur {
    type Out = Duration;
    fn parse(text: &str) -> Result<Duration, String> {
        parse::duration(text)
    }
    fn from_toml(value: Toml) -> Result<Duration, String> {
        from_int_or_text::<Self>(value, |n| Ok(Duration::from_secs(n)))
    }
}

/// A duration above zero (a zero timeout would refuse everything).
#[derive(Debug)]
pub struct PositiveDur;
impl Kind for PositiveDur {
    type Out = Duration;
    fn parse(text: &str) -> Result<Duration, String> {
        parse::positive_duration(text)
    }
    fn from_toml(value: Toml) -> Result<Duration, String> {
        from_int_or_text::<Self>(value, |n| match n {
            0 => Err("expected a duration above zero, such as 30s".into()),
            n => Ok(Duration::from_secs(n)),
        })
    }
}

/// A byte size: `512K`, `110M`, `1G` (powers of 1024); in TOML also an integer number of bytes.
#[derive(Debug)]
pub struct Size;
impl Kind for Size {
    type Out = u64;
    fn parse(text: &str) -> Result<u64, String> {
        parse::size(text)
    }
    fn from_toml(value: Toml) -> Result<u64, String> {
        from_int_or_text::<Self>(value, |n| match n {
            0 => Err("expected a size above zero".into()),
            n => Ok(n),
        })
    }
}

fn from_int_or_text<K: Kind>(
    value: Toml,
    int: impl FnOnce(u64) -> Result<K::Out, String>,
) -> Result<K::Out, String> {
    match value {
        Toml::Integer(i) => u64::try_from(i)
            .map_err(|_| "expected a value of 0 or more".to_string())
            .and_then(int),
        Toml::String(s) => K::parse(&s),
        other => Err(format!(
            "expected a string or an integer, found {} {other}",
            other.type_str()
        )),
    }
}

/// Declares an integer kind: its type, its parser and the hint shown when it fails.
macro_rules! integer_kind {
    ($(#[$meta:meta])* $name:ident: $out:ty, $hint:literal) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name;
        impl Kind for $name {
            type Out = $out;
            fn parse(text: &str) -> Result<$out, String> {
                text.trim().parse::<$out>().map_err(|_| $hint.to_string())
            }
            fn from_toml(value: Toml) -> Result<$out, String> {
                match value {
                    Toml::Integer(i) => Self::parse(&i.to_string()),
                    other => Err(format!("{}, found {} {other}", $hint, other.type_str())),
                }
            }
        }
    };
}

// After the macro, so that the value kinds in these files can declare integer kinds with it.
mod acme;
mod flags;
mod limits;
mod upstream;

integer_kind!(
    /// Whole seconds, 0 or more.
    Seconds: u64, "expected a number of seconds, 0 to turn HSTS off"
);
integer_kind!(
    /// Worker threads; 0 = one per CPU.
    Threads: usize, "expected a number of threads, 0 = one per CPU"
);
integer_kind!(
    /// Requests per second, above 0.
    PerSec: NonZeroU32, "expected a whole number of requests per second above 0"
);
integer_kind!(
    /// A number of requests, 0 or more.
    Count: u32, "expected a whole number of requests (0 or more)"
);
integer_kind!(
    /// A number of tracked keys, above 0.
    Sessions: NonZeroUsize, "expected a whole number of sessions above 0"
);
integer_kind!(
    /// A number of connections, above 0.
    Connections: NonZeroUsize, "expected a whole number of connections above 0"
);

/// A count, or `auto` (`None`: derived at start).
#[derive(Debug)]
pub struct AutoCount;
impl Kind for AutoCount {
    type Out = Option<usize>;
    fn parse(text: &str) -> Result<Option<usize>, String> {
        match text.trim() {
            t if t.eq_ignore_ascii_case("auto") => Ok(None),
            t => match t.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err("expected auto or a whole number above 0".into()),
            },
        }
    }
    fn from_toml(value: Toml) -> Result<Option<usize>, String> {
        match value {
            Toml::Integer(i) => Self::parse(&i.to_string()),
            Toml::String(s) => Self::parse(&s),
            other => Err(format!(
                "expected auto or a whole number above 0, found {} {other}",
                other.type_str()
            )),
        }
    }
}

/// A list: a TOML array of strings, or text with items separated by spaces (and, for
/// [`CommaList`], commas).
fn list_from_toml(value: Toml, split: fn(&str) -> Vec<String>) -> Result<Vec<String>, String> {
    match value {
        Toml::String(s) => Ok(split(&s)),
        Toml::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Toml::String(s) => out.extend(split(&s)),
                    other => {
                        return Err(format!(
                            "list items must be strings, found {} {other}",
                            other.type_str()
                        ))
                    }
                }
            }
            Ok(out)
        }
        other => Err(format!(
            "expected a list of strings, found {} {other}",
            other.type_str()
        )),
    }
}

/// Space-separated words (CORS origins and header names: commas are not separators there).
#[derive(Debug)]
pub struct Words;
impl Kind for Words {
    type Out = Vec<String>;
    fn parse(text: &str) -> Result<Vec<String>, String> {
        Ok(parse::words(text))
    }
    fn from_toml(value: Toml) -> Result<Vec<String>, String> {
        list_from_toml(value, parse::words)
    }
}

/// Header names, lower-cased.
#[derive(Debug)]
pub struct HeaderNames;
impl Kind for HeaderNames {
    type Out = Vec<HeaderName>;
    fn parse(text: &str) -> Result<Vec<HeaderName>, String> {
        header_names(parse::words(text))
    }
    fn from_toml(value: Toml) -> Result<Vec<HeaderName>, String> {
        header_names(list_from_toml(value, parse::words)?)
    }
}

fn header_names(words: Vec<String>) -> Result<Vec<HeaderName>, String> {
    words
        .into_iter()
        .map(|w| {
            HeaderName::from_bytes(w.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("`{w}` is not a valid header name"))
        })
        .collect()
}

/// A log filter in tracing's EnvFilter syntax.
#[derive(Debug)]
pub struct LogFilter;
impl Kind for LogFilter {
    type Out = String;
    fn parse(text: &str) -> Result<String, String> {
        tracing_subscriber::EnvFilter::try_new(text)
            .map(|_| text.to_string())
            .map_err(|e| format!("not a log filter ({e}); use e.g. info or mm_edge=debug"))
    }
}

/// CIDRs or bare addresses of trusted proxies, spaces and/or commas between them.
#[derive(Debug)]
pub struct Cidrs;
impl Kind for Cidrs {
    type Out = Vec<IpNet>;
    fn parse(text: &str) -> Result<Vec<IpNet>, String> {
        cidrs(parse::list(text))
    }
    fn from_toml(value: Toml) -> Result<Vec<IpNet>, String> {
        cidrs(list_from_toml(value, parse::list)?)
    }
}

fn cidrs(entries: Vec<String>) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(canonical_net)
                .map_err(|_| format!("\"{entry}\" is not an IP address or CIDR network"))
        })
        .collect()
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) in its IPv4 form, host bits cleared:
/// peers and header values are compared in canonical (IPv4) form.
pub fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), Some(len)) = (
            v6.network().to_ipv4_mapped(),
            v6.prefix_len().checked_sub(96),
        ) {
            if let Ok(v4net) = Ipv4Net::new(v4, len) {
                return IpNet::V4(v4net.trunc());
            }
        }
    }
    net.trunc()
}

/// Whether mm-edge terminates TLS itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Terminate TLS here, with the given certificate or a self-signed one.
    Auto,
    /// A load balancer in front terminates TLS; mm-edge serves plain HTTP.
    Off,
}

impl Kind for TlsMode {
    type Out = TlsMode;
    fn parse(text: &str) -> Result<TlsMode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" | "on" => Ok(TlsMode::Auto),
            "off" => Ok(TlsMode::Off),
            _ => Err("expected auto or off".to_string()),
        }
    }
}

/// Where the access log goes: `stdout`, `off`, or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Not written.
    Off,
    /// Standard output.
    Stdout,
    /// A file.
    File(PathBuf),
}

impl Kind for AccessLogTarget {
    type Out = AccessLogTarget;
    fn parse(text: &str) -> Result<AccessLogTarget, String> {
        match text.trim() {
            "" => Err("expected stdout, off or a file path".into()),
            t if t.eq_ignore_ascii_case("stdout") || t == "-" => Ok(AccessLogTarget::Stdout),
            t if t.eq_ignore_ascii_case("off") => Ok(AccessLogTarget::Off),
            t => Ok(AccessLogTarget::File(PathBuf::from(t))),
        }
    }
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line.
    Json,
    /// Apache/nginx combined.
    Combined,
}

impl Kind for AccessLogFormat {
    type Out = AccessLogFormat;
    fn parse(text: &str) -> Result<AccessLogFormat, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(AccessLogFormat::Json),
            "combined" => Ok(AccessLogFormat::Combined),
            _ => Err("expected json or combined".into()),
        }
    }
}

/// An optional `IP:PORT` (empty = off).
#[derive(Debug)]
pub struct OptionalAddr;
impl Kind for OptionalAddr {
    type Out = Option<SocketAddr>;
    fn parse(text: &str) -> Result<Option<SocketAddr>, String> {
        match text.trim() {
            "" => Ok(None),
            t => Addr::parse(t).map(Some),
        }
    }
}

/// A host name (no scheme, path or spaces).
#[derive(Debug)]
pub struct Host;
impl Kind for Host {
    type Out = String;
    fn parse(text: &str) -> Result<String, String> {
        let host = text.trim();
        if host.is_empty() || host.contains(['/', ' ', '@', '?', '#']) {
            return Err(
                "expected a host name such as chat.example.com (no scheme, path or spaces)".into(),
            );
        }
        Ok(host.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_types_are_checked_per_kind() {
        assert_eq!(Bool::from_toml(Toml::Boolean(true)), Ok(true));
        assert!(Bool::from_toml(Toml::String("true".into())).is_err());
        assert_eq!(Dur::from_toml(Toml::Integer(5)), Ok(Duration::from_secs(5)));
        assert_eq!(
            Dur::from_toml(Toml::String("250ms".into())),
            Ok(Duration::from_millis(250))
        );
        assert!(PositiveDur::from_toml(Toml::Integer(0)).is_err());
        assert!(PerSec::from_toml(Toml::String("10".into())).is_err());
        assert_eq!(Size::from_toml(Toml::Integer(1024)), Ok(1024));
        let list = Toml::Array(vec![Toml::String("a b".into()), Toml::String("c".into())]);
        assert_eq!(
            Words::from_toml(list),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert!(Words::from_toml(Toml::Array(vec![Toml::Integer(1)])).is_err());
    }

    #[test]
    fn trusted_proxy_networks_are_canonical() {
        let nets = Cidrs::parse(" 10.0.0.0/8,192.168.1.7  fd00::/8 ,, ::1 ").expect("valid");
        let want: Vec<IpNet> = ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "::1/128"]
            .iter()
            .map(|s| s.parse().expect("net"))
            .collect();
        assert_eq!(nets, want);
        assert_eq!(Cidrs::parse("  ").expect("empty"), Vec::<IpNet>::new());
        // Host bits are cleared; mapped networks become IPv4.
        assert_eq!(
            Cidrs::parse("10.1.2.3/8 ::ffff:172.16.0.0/108").expect("valid"),
            vec![
                "10.0.0.0/8".parse::<IpNet>().expect("net"),
                "172.16.0.0/12".parse().expect("net")
            ]
        );
        for bad in ["10.0.0.0/33", "lb.example.com", "10.0.0.0/", "1.2.3.4.5"] {
            let err = Cidrs::parse(&format!("10.0.0.0/8 {bad}")).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }
}
