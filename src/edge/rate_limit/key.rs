//! Rate-limit keys: the client IP and a keyed digest of the configured headers' values.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::store::BucketKey;

/// Builds bucket keys without allocating.
///
/// A key is the client IP (exact, when `by_ip`; IPv6 masked to `ipv6_prefix`) plus a 64-bit SipHash-1-3 digest, under a random
/// per-process key (`RandomState`), of the IP and the lower-cased values of the configured headers.
/// Hashing instead of storing the values keeps keys fixed-size (no per-request allocation, 24
/// bytes per held key whatever the header sizes). The trade-off is that two different header
/// tuples on the same IP could share a bucket if their digests collide: with 64 bits and at most
/// `sessions` live keys the chance is about sessions^2 / 2^65 (10^-11 for 10,000 keys), and since
/// the hash key is secret and SipHash is a keyed PRF, a client cannot search for a colliding value
/// offline. A collision would only make two clients share one bucket (stricter limiting), never
/// let anyone past the limit. Different IPs never share a bucket: the IP is compared exactly
/// (after the IPv6 mask).
///
/// Edges that share buckets in Redis must all make the same key of the same request, so there
/// ([`KeyBuilder::shared`]) the digest is SipHash-2-4 under a fixed, public key. A client can
/// then search for two header tuples with one digest offline, but that only merges two of its
/// own buckets (on its own IP), which limits it more; to share a bucket with another client it
/// would need that client's IP and header values.
pub(super) struct KeyBuilder {
    pub(super) by_ip: bool,
    pub(super) ipv6_prefix: u8,
    pub(super) headers: Box<[HeaderName]>,
    seed: Seed,
    /// With neither IP nor headers, every request shares this one key.
    shared: Option<BucketKey>,
}

/// The digest's hash key.
enum Seed {
    /// Random, secret, this process only.
    Process(RandomState),
    /// Fixed: the same on every edge.
    Fixed,
}

/// The fixed SipHash key of shared buckets: "mm-edge:" and "rl:v1:k0" in ASCII. Any constant
/// works; it only has to be the same on every edge.
const FIXED_KEY: (u64, u64) = (0x6d6d_2d65_6467_653a, 0x726c_3a76_313a_6b30);

impl KeyBuilder {
    /// Keys by IP (when `by_ip`, IPv6 by its first `ipv6_prefix` bits) and the values of
    /// `headers`.
    pub(super) fn new(by_ip: bool, ipv6_prefix: u8, headers: &[HeaderName]) -> Self {
        Self::with_seed(
            by_ip,
            ipv6_prefix,
            headers,
            Seed::Process(RandomState::new()),
        )
    }

    /// Like [`KeyBuilder::new`], digesting under the fixed key every edge shares.
    pub(super) fn shared(by_ip: bool, ipv6_prefix: u8, headers: &[HeaderName]) -> Self {
        Self::with_seed(by_ip, ipv6_prefix, headers, Seed::Fixed)
    }

    fn with_seed(by_ip: bool, ipv6_prefix: u8, headers: &[HeaderName], seed: Seed) -> Self {
        let mut builder = Self {
            by_ip,
            ipv6_prefix,
            headers: headers.into(),
            seed,
            shared: None,
        };
        if !by_ip && headers.is_empty() {
            builder.shared = Some(builder.key(IpAddr::from([0, 0, 0, 0]), &HeaderMap::new()));
        }
        builder
    }

    /// The key of a request from `ip` with `headers`.
    pub(super) fn key(&self, ip: IpAddr, headers: &HeaderMap) -> BucketKey {
        if let Some(shared) = self.shared {
            return shared;
        }
        let ip = if self.by_ip {
            client_octets(ip, self.ipv6_prefix)
        } else {
            [0; 16]
        };
        let digest = match &self.seed {
            Seed::Process(seed) => self.digest(seed.build_hasher(), &ip, headers),
            #[allow(deprecated)] // std's SipHash-2-4, the one with a settable key (stable, kept)
            Seed::Fixed => self.digest(
                std::hash::SipHasher::new_with_keys(FIXED_KEY.0, FIXED_KEY.1),
                &ip,
                headers,
            ),
        };
        BucketKey::new(ip, digest)
    }

    fn digest<H: Hasher>(&self, mut hasher: H, ip: &[u8; 16], headers: &HeaderMap) -> u64 {
        hasher.write(ip);
        let mut digest = LowercaseDigest::new(hasher);
        for name in self.headers.iter() {
            // Like Go's `Header.Get`: the first value; a missing header is an empty value.
            let value = headers.get(name).map_or(&b""[..], HeaderValue::as_bytes);
            let len = digest.push_lowercase(value);
            // Length after each value keeps ("ab", "c") and ("a", "bc") apart.
            digest.push_bytes(&(len as u64).to_le_bytes());
        }
        digest.finish()
    }
}

/// The 16 octets that identify a client for limiting: IPv4 (and IPv4-mapped IPv6) exactly, in
/// mapped form; other IPv6 addresses masked to their first `ipv6_prefix` bits (a single client
/// usually holds a whole /64, so keying by full address would give it 2^64 fresh buckets).
pub(in crate::edge) fn client_octets(ip: IpAddr, ipv6_prefix: u8) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = match u32::from(ipv6_prefix.min(128)) {
                0 => 0,
                n => u128::MAX << (128 - n),
            };
            (bits & mask).to_be_bytes()
        }
    }
}

/// Feeds bytes to a hasher through a small stack buffer, so equal byte streams hash equally
/// however they were produced, without allocating.
struct LowercaseDigest<H> {
    hasher: H,
    buf: [u8; 64],
    len: usize,
}

impl<H: Hasher> LowercaseDigest<H> {
    fn new(hasher: H) -> Self {
        Self {
            hasher,
            buf: [0; 64],
            len: 0,
        }
    }

    /// Pushes `bytes`, each passed through `map`, a buffer-full at a time.
    fn push_mapped(&mut self, mut bytes: &[u8], map: impl Fn(u8) -> u8) {
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.hasher.write(&self.buf);
                self.len = 0;
            }
            let n = bytes.len().min(self.buf.len() - self.len);
            let (now, rest) = bytes.split_at(n);
            for (dst, &src) in self.buf[self.len..self.len + n].iter_mut().zip(now) {
                *dst = map(src);
            }
            self.len += n;
            bytes = rest;
        }
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        self.push_mapped(bytes, |b| b);
    }

    /// Pushes `value` lower-cased as Go's `strings.ToLower` would (Unicode for UTF-8 text, ASCII
    /// otherwise); returns the number of bytes pushed.
    fn push_lowercase(&mut self, value: &[u8]) -> usize {
        if !value.is_ascii() {
            if let Ok(text) = std::str::from_utf8(value) {
                let mut pushed = 0;
                let mut utf8 = [0; 4];
                for c in text.chars().flat_map(char::to_lowercase) {
                    let encoded = c.encode_utf8(&mut utf8);
                    self.push_bytes(encoded.as_bytes());
                    pushed += encoded.len();
                }
                return pushed;
            }
        }
        self.push_mapped(value, |b| b.to_ascii_lowercase());
        value.len()
    }

    fn finish(mut self) -> u64 {
        self.hasher.write(&self.buf[..self.len]);
        self.hasher.finish()
    }
}
