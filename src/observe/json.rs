//! A JSON object written field by field into a byte buffer: the access log's line, made without
//! a serializer, copying runs of bytes that need no escaping at once.

use std::net::IpAddr;

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

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string, escaped.
    pub fn plain(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push(b'"');
        escape_into(self.out, value.as_bytes());
        self.out.push(b'"');
    }

    /// Bytes from a client, escaped (RFC 8259 section 7); bytes that are not UTF-8 become U+FFFD.
    pub fn text(&mut self, key: &str, value: &[u8]) {
        self.key(key);
        self.out.push(b'"');
        match std::str::from_utf8(value) {
            Ok(s) => escape_into(self.out, s.as_bytes()),
            Err(_) => escape_into(self.out, String::from_utf8_lossy(value).as_bytes()),
        }
        self.out.push(b'"');
    }

    /// An unsigned integer.
    pub fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// Microseconds as milliseconds with three decimals (`3412` -> `3.412`).
    pub fn millis(&mut self, key: &str, micros: u64) {
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
    pub fn ip(&mut self, key: &str, ip: IpAddr) {
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

/// Appends `s` with `"`, `\` and control characters escaped; runs of plain bytes are copied at once.
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
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
    fn every_field_kind_is_valid_json_with_the_right_value() {
        let v = object(|o| {
            o.plain("a", "GET");
            o.text("b", b"q\"u\\o\x01te\n\xff");
            o.uint("c", u64::MAX);
            o.millis("d", 3_012);
            o.millis("e", 7);
            o.ip("f", "203.0.113.7".parse().expect("ip"));
            o.ip("g", "2001:db8::1".parse().expect("ip"));
        });
        assert_eq!(v["a"], "GET");
        assert_eq!(v["b"], "q\"u\\o\u{1}te\n\u{fffd}");
        assert_eq!(v["c"], u64::MAX);
        assert_eq!(v["d"].as_f64(), Some(3.012));
        assert_eq!(v["e"].as_f64(), Some(0.007));
        assert_eq!(v["f"], "203.0.113.7");
        assert_eq!(v["g"], "2001:db8::1");
    }
}
