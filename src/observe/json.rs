//! A JSON object written field by field into a byte buffer: the access log's line, made without
//! a serializer, copying runs of bytes that need no escaping at once.

use std::net::IpAddr;

/// A field's key with its punctuation, made at compile time by [`key!`](crate::json_key):
/// `,"name":` (the comma is left out for the first field).
#[derive(Debug, Clone, Copy)]
pub struct Key(pub &'static str);

/// `json_key!("time")` is the [`Key`] `,"time":`, assembled at compile time.
#[macro_export]
macro_rules! json_key {
    ($name:literal) => {
        $crate::observe::json::Key(concat!(",\"", $name, "\":"))
    };
}

/// A JSON object being written; [`JsonObject::finish`] closes it.
#[derive(Debug)]
pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    /// Opens an object at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, key: Key) {
        let k = key.0.as_bytes();
        let k = if self.first { &k[1..] } else { k };
        self.first = false;
        self.out.extend_from_slice(k);
    }

    /// A string, escaped.
    pub fn plain(&mut self, key: Key, value: &str) {
        self.key(key);
        self.out.push(b'"');
        escape_into(self.out, value.as_bytes());
        self.out.push(b'"');
    }

    /// A string that is already valid inside a JSON string (the edge's own words: method names,
    /// outcomes, times). Checked in debug builds.
    pub fn verbatim(&mut self, key: Key, value: &[u8]) {
        debug_assert!(
            serde_json::from_slice::<String>(&[b"\"", value, b"\""].concat()).is_ok(),
            "not valid inside a JSON string: {value:?}"
        );
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(value);
        self.out.push(b'"');
    }

    /// Bytes from a client, escaped (RFC 8259 section 7); bytes that are not UTF-8 become U+FFFD.
    pub fn text(&mut self, key: Key, value: &[u8]) {
        self.key(key);
        self.out.push(b'"');
        if !scan(value, HIGH) {
            // Printable ASCII, nothing to escape: the usual header value.
            self.out.extend_from_slice(value);
        } else {
            match std::str::from_utf8(value) {
                Ok(s) => escape_into(self.out, s.as_bytes()),
                Err(_) => escape_into(self.out, String::from_utf8_lossy(value).as_bytes()),
            }
        }
        self.out.push(b'"');
    }

    /// An unsigned integer.
    pub fn uint(&mut self, key: Key, value: u64) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// Microseconds as milliseconds with three decimals (`3412` -> `3.412`).
    pub fn millis(&mut self, key: Key, micros: u64) {
        self.key(key);
        let mut buf = itoa::Buffer::new();
        self.out
            .extend_from_slice(buf.format(micros / 1000).as_bytes());
        let frac = micros % 1000;
        self.out.extend_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ]);
    }

    /// An IP address as a string.
    pub fn ip(&mut self, key: Key, ip: IpAddr) {
        self.key(key);
        self.out.push(b'"');
        write_ip(self.out, ip);
        self.out.push(b'"');
    }

    /// Closes the object.
    pub fn finish(self) {
        self.out.push(b'}');
    }
}

/// `ip` in its usual text form; IPv4 without the formatter's machinery (it is on every line).
pub fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(buf.format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
/// The top bit of every byte of a word.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `s` needs escaping in a JSON string (`"`, `\\`, control characters), or,
/// with `extra = HIGH`, is not ASCII. Eight bytes at a time (most values, paths, agents and ids,
/// need nothing, and this check is then all their escaping costs): a byte below 0x20 borrows into
/// its top bit when 0x20 is subtracted from it, and one equal to `"` or `\\` becomes zero when
/// xor-ed with it. Bytes of 0x80 and above have their top bit set, which `!w` masks out of the
/// first tests, so they match only through `extra`.
fn scan(s: &[u8], extra: u64) -> bool {
    fn zero_byte(w: u64) -> u64 {
        w.wrapping_sub(ONES) & !w & HIGH
    }
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let w = u64::from_le_bytes(word);
        let hit = (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
            | zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            | (w & extra);
        if hit != 0 {
            return true;
        }
    }
    let non_ascii = extra != 0;
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\' || (non_ascii && b >= 0x80))
}

/// Appends `s` with `"`, `\` and control characters escaped; runs of plain bytes are copied at once.
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    if !scan(s, 0) {
        out.extend_from_slice(s);
        return;
    }
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(f: impl FnOnce(&mut JsonObject)) -> serde_json::Value {
        let mut out = Vec::new();
        let mut o = JsonObject::new(&mut out);
        f(&mut o);
        o.finish();
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn the_fast_check_finds_every_byte_that_needs_escaping_wherever_it_is() {
        for len in 0..24 {
            let plain = vec![b'a'; len];
            assert!(!scan(&plain, 0), "{len} plain bytes");
            assert!(!scan(&plain, HIGH), "{len} plain bytes, ASCII");
            let utf8: Vec<u8> = "\u{e9}\u{1f600}".bytes().cycle().take(len).collect();
            assert!(!scan(&utf8, 0), "{len} bytes of UTF-8");
            assert_eq!(
                scan(&utf8, HIGH),
                len > 0,
                "{len} bytes of UTF-8 are not ASCII"
            );
            for at in 0..len {
                for bad in [0u8, 0x01, 0x1f, b'"', b'\\'] {
                    let mut v = plain.clone();
                    v[at] = bad;
                    assert!(scan(&v, 0), "byte {bad:#x} at {at} of {len}");
                    assert!(scan(&v, HIGH), "byte {bad:#x} at {at} of {len}, ASCII");
                }
                for fine in [0x20u8, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                    let mut v = plain.clone();
                    v[at] = fine;
                    assert!(!scan(&v, 0), "byte {fine:#x} at {at} of {len}");
                    assert_eq!(
                        scan(&v, HIGH),
                        fine >= 0x80,
                        "byte {fine:#x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_field_kind_is_valid_json_with_the_right_value() {
        let v = object(|o| {
            o.plain(json_key!("a"), "GET");
            o.text(json_key!("b"), b"q\"u\\o\x01te\n\xff");
            o.uint(json_key!("c"), u64::MAX);
            o.millis(json_key!("d"), 3_012);
            o.millis(json_key!("e"), 7);
            o.ip(json_key!("f"), "203.0.113.7".parse().expect("ip"));
            o.ip(json_key!("g"), "2001:db8::1".parse().expect("ip"));
            o.text(json_key!("h"), "caf\u{e9} \"x\"".as_bytes());
            o.text(json_key!("i"), b"Mozilla/5.0 (X11; Linux x86_64)");
            o.plain(json_key!("j"), "a\"b");
        });
        assert_eq!(v["a"], "GET");
        assert_eq!(v["b"], "q\"u\\o\u{1}te\n\u{fffd}");
        assert_eq!(v["c"], u64::MAX);
        assert_eq!(v["d"].as_f64(), Some(3.012));
        assert_eq!(v["e"].as_f64(), Some(0.007));
        assert_eq!(v["f"], "203.0.113.7");
        assert_eq!(v["g"], "2001:db8::1");
        assert_eq!(v["h"], "caf\u{e9} \"x\"");
        assert_eq!(v["i"], "Mozilla/5.0 (X11; Linux x86_64)");
        assert_eq!(v["j"], "a\"b");
    }
}
