//! Large bodies stream through the edge in both directions: 64 MiB up and down, byte-exact
//! (SHA-256 end to end), while the edge's resident memory stays far below the body size.

mod common;

use common::backend::{hex, pattern_byte, pattern_sha256};
use common::{Backend, Edge};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

const SIZE: u64 = 64 * 1024 * 1024;
/// Far below the 64 MiB body: the edge must stream, not buffer.
const RSS_LIMIT_KIB: u64 = 40 * 1024;

#[tokio::test]
async fn upload_and_download_64_mib_byte_exact_with_bounded_memory() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let before = edge.peak_rss_kib();
    let expected = pattern_sha256(SIZE);

    for client in [edge.client_h1(), edge.client()] {
        // Upload: a streamed body the client never holds whole either.
        let chunks = futures_util::stream::iter((0..SIZE / 65536).map(|c| {
            let data: Vec<u8> = (0..65536u64).map(|k| pattern_byte(c * 65536 + k)).collect();
            Ok::<_, std::io::Error>(data)
        }));
        let resp = client
            .post(edge.url("/api/v4/files?channel_id=abc"))
            .header("content-length", SIZE.to_string())
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .expect("upload");
        assert_eq!(resp.status(), 200);
        let seen: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(seen["len"], SIZE);
        assert_eq!(
            seen["sha256"],
            expected.as_str(),
            "upload arrived byte-exact"
        );

        // Download.
        let resp = client
            .get(edge.url(&format!("/api/v4/download?size={SIZE}")))
            .send()
            .await
            .expect("download");
        assert_eq!(resp.status(), 200);
        let mut stream = resp.bytes_stream();
        let mut h = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("chunk");
            len += chunk.len() as u64;
            h.update(&chunk);
        }
        assert_eq!(len, SIZE);
        assert_eq!(hex(&h.finalize()), expected, "download arrived byte-exact");
    }

    let peak = edge.peak_rss_kib();
    assert!(
        peak < RSS_LIMIT_KIB,
        "edge peak RSS {peak} KiB (was {before} KiB before) for 64 MiB bodies: not streaming"
    );
}
