//! `mm-edge healthcheck`: exits 0 only when a running edge answers its health endpoint.
//!
//! It speaks to the edge's own listener on loopback, so it accepts whatever certificate the edge
//! presents (self-signed included): it checks that the edge answers, not who it is.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Settings;
use crate::edge::endpoints::HEALTH_PATH;
use crate::server::proxy_header::V2_LOCAL;

/// Checks the edge's listener: the TLS one when TLS is terminated here, else the plain one.
pub async fn check(settings: &Settings) -> Result<(), String> {
    let tls = settings.terminates_tls();
    let addr = loopback(if tls {
        settings.listen.https
    } else {
        settings.listen.http
    });
    let fut = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        if settings.listen.proxy_protocol {
            // The listener expects a PROXY header first; LOCAL: "my own connection".
            tcp.write_all(&V2_LOCAL)
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
        }
        if tls {
            let provider = crate::tls::provider();
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = ServerName::IpAddress(addr.ip().into());
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("{addr}: TLS: {e}"))?;
            get(stream, addr).await
        } else {
            get(tcp, addr).await
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| format!("{addr}: no answer within 5s"))?
}

/// Where to reach a listener from this host: an any-address through 127.0.0.1, which a `[::]`
/// listener takes too (it is dual-stack, or fell back to `0.0.0.0` on a host without IPv6).
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        return SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()));
    }
    addr
}

async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, addr: SocketAddr) -> Result<(), String> {
    let req = format!("GET {HEALTH_PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let read = s
            .read(&mut buf[n..])
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        if read == 0 {
            break;
        }
        n += read;
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    if head.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "{addr}: unexpected answer {:?}",
            head.lines().next().unwrap_or("")
        ))
    }
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
