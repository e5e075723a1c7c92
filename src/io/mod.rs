//! I/O wrappers shared by the client and the upstream side: traffic tracking for idle
//! connections, write coalescing for HTTP/2, the tunnel's two-way copy, bytes given back to a
//! connection's next reader, the client side of an upgrade, and a waker that says it fired.

pub mod coalesce;
pub mod pump;
pub mod rewind;
pub mod stream_stall;
pub mod tracked;
pub mod upgrade;
pub mod wake_flag;
