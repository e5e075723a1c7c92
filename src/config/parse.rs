//! Parsers for the value syntaxes settings use: booleans, durations, sizes, lists.

use std::time::Duration;

/// Parses `true/false/yes/no/on/off/1/0` (case-insensitive), as the old image's env files use.
pub fn bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// Parses a duration: `250ms`, `30s`, `10m`, `2h`, `1d`, or a bare number of seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a duration such as 30s, 10m, 2h or 500ms".to_string())?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86400)),
        _ => return Err("expected a duration such as 30s, 10m, 2h or 500ms".into()),
    };
    Ok(d)
}

/// Parses a positive duration (timeouts: zero would refuse everything).
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err("expected a duration above zero, such as 30s".into());
    }
    Ok(d)
}

/// Parses a byte size: `1048576`, `512K`, `110M`, `1G` (powers of 1024; `KB`, `KiB` also accepted).
pub fn size(s: &str) -> Result<u64, String> {
    const HINT: &str = "expected a size such as 110M, 1G or 1048576";
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| HINT.to_string())?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(HINT.into()),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| "size too large".to_string())?;
    if v == 0 {
        return Err("expected a size above zero".into());
    }
    Ok(v)
}

/// Splits a list written with spaces and/or commas.
pub fn list(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits a space-separated list (CORS origins and header names: commas are not separators there).
pub fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("600s"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("24h"), Ok(Duration::from_secs(86400)));
        assert!(duration("abc").is_err());
        assert!(duration("10x").is_err());
        assert!(duration("-1s").is_err());
        assert!(positive_duration("0s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("200M"), Ok(200 << 20));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert_eq!(size("1gib"), Ok(1 << 30));
        assert_eq!(size("512K"), Ok(512 << 10));
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert!(size("0").is_err());
        assert!(size("12X").is_err());
        assert!(size("99999999999G").is_err());
    }

    #[test]
    fn bools_and_lists() {
        assert_eq!(bool("TRUE"), Ok(true));
        assert_eq!(bool("off"), Ok(false));
        assert!(bool("maybe").is_err());
        assert_eq!(list("a, b,c  d"), vec!["a", "b", "c", "d"]);
        assert_eq!(words(" a  b "), vec!["a", "b"]);
    }
}
