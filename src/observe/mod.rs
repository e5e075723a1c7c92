//! What an admin sees of the traffic: the access log's writer ([`access_log`]) and the
//! Prometheus metrics ([`metrics`]). What goes into a log line is the pipeline's
//! (`pipeline::access`).

pub mod access_log;
pub mod json;
pub mod metrics;
