//! The value kinds of the login limit, the IPv6 prefix of both limits and the Redis they may
//! share.

use std::num::NonZeroU32;
use std::time::Duration;

use toml::Value as Toml;

use super::super::parse;
use super::Kind;

integer_kind!(
    /// Failed sign-ins allowed in a row, above 0.
    LoginBurst: NonZeroU32, "expected a whole number of failed sign-ins above 0"
);

/// The login limit's refill rate: `N/s`, `N/min`, `N/h`, or `off` (`None`).
#[derive(Debug)]
pub struct LoginRate;
impl Kind for LoginRate {
    type Out = Option<Rate>;
    fn parse(text: &str) -> Result<Option<Rate>, String> {
        const HINT: &str = "expected N/s, N/min or N/h with N above 0 (e.g. 10/min), or off";
        let t = text.trim();
        if parse::bool(t) == Ok(false) {
            return Ok(None);
        }
        let (count, unit) = t.split_once('/').ok_or(HINT)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| HINT)?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(HINT.into()),
        };
        Ok(Some(Rate { count, period }))
    }
}

/// `count` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many.
    pub count: NonZeroU32,
    /// Per how long.
    pub period: Duration,
}

impl Rate {
    /// The time one unit takes to come back: `period / count`.
    pub fn interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

/// An IPv6 prefix length, 1 to 128.
#[derive(Debug)]
pub struct Ipv6Prefix;
impl Kind for Ipv6Prefix {
    type Out = u8;
    fn parse(text: &str) -> Result<u8, String> {
        match text.trim().parse::<u8>() {
            Ok(n @ 1..=128) => Ok(n),
            _ => Err("expected a prefix length from 1 to 128 (64 = one client's network, 128 = each address)".into()),
        }
    }
    fn from_toml(value: Toml) -> Result<u8, String> {
        match value {
            Toml::Integer(i) => Self::parse(&i.to_string()),
            other => Err(format!(
                "expected a prefix length from 1 to 128, found {} {other}",
                other.type_str()
            )),
        }
    }
}

/// The URL of the Redis that shares the limits between edges; empty = none. Checked here with the
/// Redis client's own parser, so an edge never starts with a URL it cannot use.
#[derive(Debug)]
pub struct RedisUrl;
impl Kind for RedisUrl {
    type Out = Option<String>;
    fn parse(text: &str) -> Result<Option<String>, String> {
        const HINT: &str = "expected redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS) or \
                            redis+unix:///PATH, e.g. redis://redis:6379; empty = limits in this \
                            process only";
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let scheme = t.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("redis" | "rediss" | "redis+unix" | "unix")) {
            return Err(HINT.into());
        }
        match redis::IntoConnectionInfo::into_connection_info(t) {
            Ok(_) => Ok(Some(t.to_string())),
            Err(e) => Err(format!("{HINT} ({e})")),
        }
    }
}
