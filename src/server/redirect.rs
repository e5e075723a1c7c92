//! The plain-HTTP listener's answer when TLS is terminated here: a redirect to the site URL.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::edge::HEALTH_PATH;
use crate::proxy::body::{self, ResponseBody};
use crate::proxy::local;

/// Redirects to `origin` + path + query: 301 for GET/HEAD, 308 (method and body kept) otherwise.
/// The target comes from the configured site URL, never from the client's Host header.
pub fn redirect<B>(origin: &str, req: &Request<B>) -> Response<ResponseBody> {
    if req.uri().path() == HEALTH_PATH {
        return local(StatusCode::OK, "ok\n");
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let status = if req.method() == Method::GET || req.method() == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let mut target = String::with_capacity(origin.len() + path.len());
    target.push_str(origin);
    target.push_str(path);
    let mut resp = Response::new(body::local(""));
    *resp.status_mut() = status;
    match HeaderValue::from_str(&target) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_path_and_query_and_ignores_host() {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v4/users/login?x=1&y=2")
            .header(header::HOST, "evil.example")
            .body(())
            .expect("request");
        let resp = redirect("https://chat.example.com", &req);
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://chat.example.com/api/v4/users/login?x=1&y=2"
        );
    }
}
