//! I/O wrappers shared by the client and the upstream side: traffic tracking for idle
//! connections, write coalescing for HTTP/2, and the tunnel's two-way copy.

pub mod coalesce;
pub mod pump;
pub mod stream_stall;
pub mod tracked;
