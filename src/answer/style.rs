//! How an error made at the edge is told: Mattermost's JSON error shape, a small page for
//! browsers (retrying by itself when Mattermost is down), or plain text.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

/// How the client wants an error told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// Mattermost's JSON error shape: `/api/` paths.
    Json,
    /// A page: a browser loading a page (`Accept: text/html`).
    Html,
    /// Plain text: anything else (curl, scripts).
    Text,
}

impl ErrorStyle {
    /// The style for a request: `api` (its path is under `/api/`, as its route group says),
    /// else its `Accept` header (looked at only for the other paths).
    pub fn of(api: bool, headers: &HeaderMap) -> Self {
        if api {
            return ErrorStyle::Json;
        }
        let html = headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| contains_ignore_case(v.as_bytes(), b"text/html"));
        if html {
            ErrorStyle::Html
        } else {
            ErrorStyle::Text
        }
    }
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Mattermost's error shape (`model.AppError`), as JSON.
pub(super) fn json(
    id: &str,
    message: &str,
    detail: &str,
    request_id: &HeaderValue,
    status: StatusCode,
) -> Bytes {
    let body = serde_json::json!({
        "id": id,
        "message": message,
        "detailed_error": detail,
        "request_id": String::from_utf8_lossy(request_id.as_bytes()),
        "status_code": status.as_u16(),
    });
    Bytes::from(body.to_string())
}

/// A small self-contained page (no external assets) saying `title` and `message`; with
/// `retries`, it reloads itself with backoff.
pub(super) fn page(
    title: &str,
    message: &str,
    retries: bool,
    status: StatusCode,
    request_id: &HeaderValue,
) -> Bytes {
    let mut page = String::with_capacity(2048);
    page.push_str(PAGE_HEAD);
    page.push_str("<title>");
    push_escaped(&mut page, title);
    page.push_str("</title></head><body><main><h1>");
    push_escaped(&mut page, title);
    page.push_str("</h1><p>");
    push_escaped(&mut page, message);
    page.push_str("</p>");
    if retries {
        page.push_str("<p id=\"retry\">This page retries by itself.</p>");
    }
    page.push_str("<small>Status ");
    page.push_str(status.as_str());
    page.push_str(" &middot; request ID ");
    push_escaped(&mut page, &String::from_utf8_lossy(request_id.as_bytes()));
    page.push_str("</small></main>");
    if retries {
        page.push_str(RETRY_SCRIPT);
    }
    page.push_str("</body></html>\n");
    Bytes::from(page)
}

/// The page's head: a standalone style, and a refresh for browsers without JavaScript.
const PAGE_HEAD: &str = concat!(
    "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
    "<style>body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;",
    "background:#f4f4f6;color:#3d3c40;display:flex;align-items:center;justify-content:center;",
    "min-height:100vh;margin:0}main{max-width:32rem;margin:1rem;padding:2rem;background:#fff;",
    "border-radius:8px;box-shadow:0 2px 8px rgba(0,0,0,.12)}h1{font-size:1.4rem;margin:0 0 1rem}",
    "p{line-height:1.5}small{color:#8b8b90}</style>",
);

/// Reloads the page after 1, 2, 4... 30 seconds (the count kept for five minutes in the tab's
/// session storage, so a long outage is not hammered); without JavaScript the `noscript`
/// refresh does it every 30 seconds.
const RETRY_SCRIPT: &str = concat!(
    "<noscript><meta http-equiv=\"refresh\" content=\"30\"></noscript>",
    "<script>(function(){var k=\"mm-edge-retry\",s={},n=Date.now();",
    "try{s=JSON.parse(sessionStorage.getItem(k))||{}}catch(e){}",
    "if(!s.t||n-s.t>300000){s.n=0}var d=Math.min(30,Math.pow(2,s.n));s.n+=1;s.t=n;",
    "try{sessionStorage.setItem(k,JSON.stringify(s))}catch(e){}",
    "var el=document.getElementById(\"retry\");",
    "function tick(){if(d<=0){location.reload();return}",
    "el.textContent=\"Retrying in \"+d+\" s\\u2026\";d-=1;setTimeout(tick,1000)}tick()})();",
    "</script>",
);

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `110 MiB`, `512 KiB`, or bytes.
pub(super) fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}
