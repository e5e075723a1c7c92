//! Allowed-origin entries (`cors.domains`): what an allowed origin may look like, and how one is
//! matched (case-insensitively; one `*` wildcard standing for host or port characters only).

use std::fmt;

/// Why an allowed-origins entry is not an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginProblem {
    /// No `scheme://` in front.
    NoScheme,
    /// The scheme has characters a URL scheme cannot have.
    BadScheme,
    /// Nothing between `://` and the port.
    NoHost,
    /// Something after the host, e.g. a trailing `/`.
    HasPath,
    /// A `?query` or `#fragment`.
    HasQueryOrFragment,
    /// `user@` in front of the host.
    HasUserinfo,
    /// More than one `*`.
    TwoWildcards,
    /// The port is not a number from 0 to 65535.
    BadPort,
    /// A character that cannot appear in a host name.
    BadHostChar(char),
    /// Non-ASCII characters (browsers send the punycode form).
    NotAscii,
}

impl fmt::Display for OriginProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoScheme => {
                f.write_str("no scheme (write scheme://host[:port], e.g. https://chat.example.com)")
            }
            Self::BadScheme => f.write_str("the scheme is not a URL scheme"),
            Self::NoHost => f.write_str("no host after the scheme"),
            Self::HasPath => f.write_str(
                "has a path (an origin is scheme://host[:port] only; drop everything from the \
                 first '/' after the host, including a trailing '/')",
            ),
            Self::HasQueryOrFragment => f.write_str("has a query or fragment ('?' or '#')"),
            Self::HasUserinfo => f.write_str("has a user name ('@'), which origins never carry"),
            Self::TwoWildcards => {
                f.write_str("has more than one '*' wildcard (one per entry at most)")
            }
            Self::BadPort => f.write_str("the port is not a number from 0 to 65535"),
            Self::BadHostChar(c) => write!(f, "the host contains {c:?}"),
            Self::NotAscii => f.write_str(
                "has non-ASCII characters (use the punycode form, xn--..., as browsers send it)",
            ),
        }
    }
}

/// One `*` inside an entry: the origin must start with `prefix` and end with `suffix`.
#[derive(Debug)]
pub(super) struct Wildcard {
    prefix: Box<str>,
    suffix: Box<str>,
}

impl Wildcard {
    /// rs/cors prefix/suffix matching (case-insensitive), hardened so that the text standing in
    /// for `*` can only be host or port characters: a non-browser client sending
    /// `https://evil.com/.example.com` does not match `https://*.example.com`.
    pub(super) fn matches(&self, origin: &[u8]) -> bool {
        let (p, s) = (self.prefix.as_bytes(), self.suffix.as_bytes());
        if origin.len() < p.len() + s.len() {
            return false;
        }
        let (head, rest) = origin.split_at(p.len());
        let (middle, tail) = rest.split_at(rest.len() - s.len());
        head.eq_ignore_ascii_case(p)
            && tail.eq_ignore_ascii_case(s)
            && middle
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
    }
}

/// Which origins are allowed.
#[derive(Debug)]
pub(super) enum Origins {
    /// `*` appeared in the list.
    All,
    /// Lower-cased exact origins and wildcard patterns.
    List {
        exact: Vec<Box<str>>,
        wildcards: Vec<Wildcard>,
    },
}

/// A parsed allowed-origins entry.
pub(super) enum Entry {
    All,
    Exact(Box<str>),
    Wildcard(Wildcard),
}

/// Validates one entry: `*`, or `scheme://host[:port]` with at most one `*` anywhere after
/// nothing else (no path, query, fragment or user name). Stored lower-cased.
pub(super) fn parse_entry(raw: &str) -> Result<Entry, OriginProblem> {
    if raw == "*" {
        return Ok(Entry::All);
    }
    if !raw.is_ascii() {
        return Err(OriginProblem::NotAscii);
    }
    let entry = raw.to_ascii_lowercase();
    if entry.matches('*').count() > 1 {
        return Err(OriginProblem::TwoWildcards);
    }
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err(OriginProblem::NoScheme);
    };
    check_scheme(scheme)?;
    if rest.contains('/') {
        return Err(OriginProblem::HasPath);
    }
    if rest.contains(['?', '#']) {
        return Err(OriginProblem::HasQueryOrFragment);
    }
    if rest.contains('@') {
        return Err(OriginProblem::HasUserinfo);
    }
    check_authority(rest)?;
    Ok(match entry.split_once('*') {
        Some((prefix, suffix)) => Entry::Wildcard(Wildcard {
            prefix: prefix.into(),
            suffix: suffix.into(),
        }),
        None => Entry::Exact(entry.into()),
    })
}

fn check_scheme(scheme: &str) -> Result<(), OriginProblem> {
    let valid_chars = scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'*'));
    let starts_well = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*');
    if valid_chars && starts_well {
        Ok(())
    } else {
        Err(OriginProblem::BadScheme)
    }
}

/// `host[:port]`, host a name, IPv4 address or `[IPv6]`, any of it possibly holding the `*`.
fn check_authority(authority: &str) -> Result<(), OriginProblem> {
    let (host, port) = if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err(OriginProblem::BadHostChar('['));
        };
        let (host, after) = authority.split_at(end + 1);
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(OriginProblem::BadPort),
        };
        let inner = &host[1..host.len() - 1];
        if let Some(c) = inner
            .chars()
            .find(|c| !(c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '*')))
        {
            return Err(OriginProblem::BadHostChar(c));
        }
        (host, port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if let Some(c) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*')))
        {
            return Err(OriginProblem::BadHostChar(c));
        }
        (host, port)
    };
    if host.is_empty() || host == "[]" {
        return Err(OriginProblem::NoHost);
    }
    if let Some(port) = port {
        let valid = port == "*"
            || port.parse::<u16>().is_ok()
            || (port.contains('*') && port.bytes().all(|b| b.is_ascii_digit() || b == b'*'));
        if !valid {
            return Err(OriginProblem::BadPort);
        }
    }
    Ok(())
}
