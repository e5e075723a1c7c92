//! HTTP/2 frames off the wire, for what a client library hides: the server's SETTINGS as sent,
//! and PINGs that a test must see (and may leave unanswered; the h2 library answers them).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{Edge, PATIENCE};

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
/// The ACK flag of SETTINGS and PING.
pub const ACK: u8 = 0x1;
/// HEADERS and DATA flags.
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
/// SETTINGS parameters.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// One frame.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The (identifier, value) pairs of a SETTINGS frame.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|p| {
                (
                    u16::from_be_bytes([p[0], p[1]]),
                    u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
                )
            })
            .collect()
    }
}

/// A TLS connection to the edge with ALPN `h2`, the client preface and an empty SETTINGS
/// frame already sent.
pub async fn connect(edge: &Edge) -> TlsStream<TcpStream> {
    let mut config = (*edge.rustls_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(edge.https.expect("tls"))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    write_frame(&mut tls, SETTINGS, 0, &[]).await;
    tls
}

/// Writes one frame on stream 0.
pub async fn write_frame(s: &mut TlsStream<TcpStream>, kind: u8, flags: u8, payload: &[u8]) {
    write_stream_frame(s, kind, flags, 0, payload).await;
}

/// Sends `GET {path}` for `localhost` on stream `stream` (one HEADERS frame that ends it).
pub async fn get(s: &mut TlsStream<TcpStream>, stream: u32, path: &str) {
    // HPACK: :method GET, :scheme https (static table 2, 7), :path and :authority as literals
    // with indexed names (4, 1), without Huffman coding.
    let mut block = vec![0x82, 0x87];
    for (name, value) in [(0x04u8, path), (0x01, "localhost")] {
        block.push(name);
        block.push(u8::try_from(value.len()).expect("short value"));
        block.extend_from_slice(value.as_bytes());
    }
    write_stream_frame(s, HEADERS, END_STREAM | END_HEADERS, stream, &block).await;
}

/// Writes one frame on `stream`.
pub async fn write_stream_frame(
    s: &mut TlsStream<TcpStream>,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) {
    let len = u32::try_from(payload.len())
        .expect("frame size")
        .to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    s.write_all(&frame).await.expect("write frame");
    s.flush().await.expect("flush");
}

/// The next frame, or `None` once the edge closed the connection (EOF or reset); a connection
/// that stays silent for [`PATIENCE`] fails the test.
pub async fn read_frame(s: &mut TlsStream<TcpStream>) -> Option<Frame> {
    tokio::time::timeout(PATIENCE, async {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        })
    })
    .await
    .expect("the edge sent no frame and did not close within the patience bound")
}
