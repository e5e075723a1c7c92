//! The open-file limit: raised to its hard limit at start (as nginx's `worker_rlimit_nofile` and
//! Go's runtime do), and split between client connections and the rest (Mattermost connections,
//! listeners, files), so that clients filling their share never starve upstream connects.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use tracing::{info, warn};

/// Fewest client connections the derived limit allows.
const MIN_CONNECTIONS: usize = 16;

/// Raises the soft open-file limit to the hard one; returns the soft limit in force (`None`:
/// unlimited).
pub fn raise_open_files() -> Option<u64> {
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum {
        let wanted = Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, wanted) {
            warn!(error = %e, soft = ?before.current, hard = ?before.maximum, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The client connection limit: the configured one, else half the open files.
pub fn max_connections(configured: Option<usize>, open_files: Option<u64>) -> usize {
    let derived = open_files.map_or(usize::MAX / 2, |n| {
        usize::try_from(n / 2)
            .unwrap_or(usize::MAX / 2)
            .max(MIN_CONNECTIONS)
    });
    let limit = configured.unwrap_or(derived);
    match (configured, open_files) {
        (Some(n), Some(files)) if n as u64 >= files => warn!(
            max_connections = n,
            open_files = files,
            "the client connection limit is not below the open-file limit: clients can use up every file descriptor and Mattermost connections fail"
        ),
        _ => {}
    }
    let files = open_files.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    info!(open_files = %files, max_connections = limit, "connection limits");
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_files_go_to_clients_unless_configured() {
        assert_eq!(max_connections(None, Some(1 << 20)), 1 << 19);
        assert_eq!(max_connections(None, Some(64)), 32);
        assert_eq!(max_connections(None, Some(10)), MIN_CONNECTIONS);
        assert_eq!(max_connections(Some(500), Some(1 << 20)), 500);
    }
}
