//! Route groups: what kind of Mattermost endpoint a path is, derived once per request (for logs
//! and metrics, whose labels must stay few: never the raw path).

/// The kind of endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteGroup {
    /// The WebSocket endpoint, `/api/v4/websocket` (also `/api/vN/users/websocket`).
    Websocket,
    /// File uploads and downloads, `/api/v4/files...`.
    Files,
    /// Plugin HTTP endpoints, `/plugins/...`.
    Plugins,
    /// Every other `/api/...` path.
    Api,
    /// The web app's assets, `/static/...`.
    Static,
    /// Everything else: pages, team URLs, the edge's own endpoints.
    Other,
}

impl RouteGroup {
    /// The group of `path`.
    pub fn of(path: &str) -> Self {
        if let Some(rest) = path.strip_prefix("/api/") {
            if is_websocket(rest) {
                return RouteGroup::Websocket;
            }
            if rest
                .split_once('/')
                .is_some_and(|(_, tail)| tail == "files" || tail.starts_with("files/"))
            {
                return RouteGroup::Files;
            }
            return RouteGroup::Api;
        }
        if path.starts_with("/static/") {
            RouteGroup::Static
        } else if path.starts_with("/plugins/") {
            RouteGroup::Plugins
        } else {
            RouteGroup::Other
        }
    }

    /// Whether the path is under `/api/` (the API, its files and its WebSocket).
    pub fn is_api(self) -> bool {
        matches!(
            self,
            RouteGroup::Api | RouteGroup::Files | RouteGroup::Websocket
        )
    }

    /// The group's index in `observe::metrics::ROUTES`.
    pub fn index(self) -> usize {
        match self {
            RouteGroup::Websocket => 0,
            RouteGroup::Files => 1,
            RouteGroup::Plugins => 2,
            RouteGroup::Api => 3,
            RouteGroup::Static => 4,
            RouteGroup::Other => 5,
        }
    }

    /// The group's label: `api`, `websocket`, `files`, `static`, `plugins`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteGroup::Websocket => "websocket",
            RouteGroup::Files => "files",
            RouteGroup::Plugins => "plugins",
            RouteGroup::Api => "api",
            RouteGroup::Static => "static",
            RouteGroup::Other => "other",
        }
    }
}

/// `v4/websocket` or `v4/users/websocket` (Mattermost's `/api/v[0-9]+/(users/)?websocket$`).
fn is_websocket(rest: &str) -> bool {
    let Some((version, tail)) = rest.split_once('/') else {
        return false;
    };
    let numbered = version.len() > 1
        && version.starts_with('v')
        && version[1..].bytes().all(|b| b.is_ascii_digit());
    numbered && (tail == "websocket" || tail == "users/websocket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_into_their_groups() {
        for (path, group) in [
            ("/api/v4/websocket", RouteGroup::Websocket),
            ("/api/v12/users/websocket", RouteGroup::Websocket),
            ("/api/v4/websocket/x", RouteGroup::Api),
            ("/api/vx/websocket", RouteGroup::Api),
            ("/api/v4/files", RouteGroup::Files),
            ("/api/v4/files/abc/preview", RouteGroup::Files),
            ("/api/v4/filesystem", RouteGroup::Api),
            ("/api/v4/users/me", RouteGroup::Api),
            ("/static/main.js", RouteGroup::Static),
            ("/plugins/focalboard/api", RouteGroup::Plugins),
            ("/", RouteGroup::Other),
            ("/myteam/channels/town-square", RouteGroup::Other),
        ] {
            assert_eq!(RouteGroup::of(path), group, "{path}");
            assert_eq!(group.is_api(), path.starts_with("/api/"), "{path}");
            assert_eq!(
                crate::observe::metrics::ROUTES[group.index()],
                group.as_str(),
                "{path}"
            );
        }
    }
}
