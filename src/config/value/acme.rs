//! ACME settings' kinds: the on/off/auto switch, the challenge choice, the directory URL (or a
//! Let's Encrypt name), the account's e-mail address.

use super::Kind;

/// Whether certificates come from an ACME CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeMode {
    /// Always (an error together with certificate files).
    On,
    /// Never.
    Off,
    /// When no certificate files are given and the site host is a public DNS name.
    Auto,
}

impl Kind for AcmeMode {
    type Out = AcmeMode;
    fn parse(text: &str) -> Result<AcmeMode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => Ok(AcmeMode::On),
            "off" | "false" | "no" => Ok(AcmeMode::Off),
            "auto" => Ok(AcmeMode::Auto),
            _ => Err("expected on, off or auto".into()),
        }
    }
}

/// Which ACME challenge proves control of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// TLS-ALPN-01 (RFC 8737), answered by the HTTPS listener.
    TlsAlpn01,
    /// HTTP-01, answered by the HTTP listener (and the HTTPS one).
    Http01,
    /// Whichever the CA offers, TLS-ALPN-01 first.
    Auto,
}

impl Kind for AcmeChallenge {
    type Out = AcmeChallenge;
    fn parse(text: &str) -> Result<AcmeChallenge, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "tls-alpn-01" => Ok(AcmeChallenge::TlsAlpn01),
            "http-01" => Ok(AcmeChallenge::Http01),
            "auto" => Ok(AcmeChallenge::Auto),
            _ => Err("expected tls-alpn-01, http-01 or auto".into()),
        }
    }
}

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// An ACME directory: an `https://` URL, or the names `letsencrypt` / `letsencrypt-staging`.
#[derive(Debug)]
pub struct AcmeDirectory;
impl Kind for AcmeDirectory {
    type Out = String;
    fn parse(text: &str) -> Result<String, String> {
        let t = text.trim();
        match t.to_ascii_lowercase().as_str() {
            "letsencrypt" => return Ok(LETSENCRYPT.into()),
            "letsencrypt-staging" => return Ok(LETSENCRYPT_STAGING.into()),
            _ => {}
        }
        let uri: http::Uri = t.parse().map_err(|_| {
            "expected an https:// ACME directory URL, letsencrypt or letsencrypt-staging"
                .to_string()
        })?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(
                "expected an https:// ACME directory URL (ACME servers speak HTTPS only), letsencrypt or letsencrypt-staging"
                    .into(),
            );
        }
        Ok(t.to_string())
    }
}

/// An e-mail address for the ACME account (empty = none).
#[derive(Debug)]
pub struct Email;
impl Kind for Email {
    type Out = Option<String>;
    fn parse(text: &str) -> Result<Option<String>, String> {
        let t = text.trim().trim_start_matches("mailto:");
        if t.is_empty() {
            return Ok(None);
        }
        match t.split_once('@') {
            Some((user, domain))
                if !user.is_empty()
                    && domain.contains('.')
                    && !t.contains(|c: char| c.is_whitespace() || c == ',') =>
            {
                Ok(Some(t.to_string()))
            }
            _ => Err("expected one e-mail address such as admin@example.com".into()),
        }
    }
}

/// An external account binding HMAC key as CAs hand it out: base64url (or base64), padded or not.
pub fn decode_hmac(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let t = text.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
        .ok()
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eab_keys_decode_with_and_without_padding() {
        assert_eq!(decode_hmac("AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode_hmac("AQI=").unwrap(), vec![1, 2]);
        assert_eq!(decode_hmac("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_hmac("+/8").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_hmac("not base64!").is_none());
    }

    #[test]
    fn directories_and_names() {
        assert_eq!(AcmeDirectory::parse("letsencrypt").unwrap(), LETSENCRYPT);
        assert_eq!(
            AcmeDirectory::parse(" LetsEncrypt-Staging ").unwrap(),
            LETSENCRYPT_STAGING
        );
        assert_eq!(
            AcmeDirectory::parse("https://ca.internal:9000/acme/acme/directory").unwrap(),
            "https://ca.internal:9000/acme/acme/directory"
        );
        for bad in [
            "http://ca.example.net/dir",
            "ca.example.net",
            "",
            "https://",
        ] {
            assert!(AcmeDirectory::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse("").unwrap(), None);
        assert_eq!(
            Email::parse("mailto:admin@example.com").unwrap().as_deref(),
            Some("admin@example.com")
        );
        for bad in ["admin", "@example.com", "a@b", "a@b.c, d@e.f"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
