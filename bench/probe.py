#!/usr/bin/env python3
"""Wait until an HTTPS/HTTP URL answers with the expected status (stdlib only).

Usage: probe.py URL [--status 200] [--timeout 15] [--bytes N] [--tls-info] [--pid PID]
Exit 0 when ready (prints "TLSv1.3 TLS_AES_256_GCM_SHA384 h2" with --tls-info),
1 on timeout with the last error on stderr.
"""

import argparse
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def tls_info(url: str) -> str:
    """Protocol, cipher, ALPN (offering h2) and whether a second connection resumes the session."""
    u = urllib.parse.urlsplit(url)
    ctx = ssl._create_unverified_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((u.hostname, u.port), timeout=2) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            info = f"{s.version()} {s.cipher()[0]} ALPN {s.selected_alpn_protocol()}"
    # Resumption as wrk does it on reconnect: HTTP/1.1, reuse the session from the last connection.
    ctx = ssl._create_unverified_context()
    ctx.set_alpn_protocols(["http/1.1"])
    session = None
    reused = False
    for _ in range(2):
        with socket.create_connection((u.hostname, u.port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                reused = s.session_reused
                req = f"GET {u.path or '/'} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                s.sendall(req.encode())
                while s.recv(65536):
                    pass
                session = s.session
    return f"{info}, session resumption {'yes' if reused else 'NO'}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--bytes", type=int, default=None, help="expected body length")
    ap.add_argument("--tls-info", action="store_true", help="print TLS version, cipher, ALPN")
    ap.add_argument("--pid", type=int, default=None, help="give up at once if this process exits")
    a = ap.parse_args()
    ctx = ssl._create_unverified_context()
    deadline = time.monotonic() + a.timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        if a.pid is not None and not os.path.exists(f"/proc/{a.pid}"):
            print(f"probe {a.url}: process {a.pid} exited", file=sys.stderr)
            return 1
        try:
            with urllib.request.urlopen(a.url, timeout=2, context=ctx) as r:
                body = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except (OSError, urllib.error.URLError) as e:
            last = f"{type(e).__name__}: {e}"
            time.sleep(0.1)
            continue
        if status == a.status and (a.bytes is None or len(body) == a.bytes):
            if a.tls_info:
                print(tls_info(a.url))
            return 0
        last = f"status {status}, {len(body)} bytes (want {a.status}, {a.bytes} bytes)"
        time.sleep(0.1)
    print(f"probe {a.url}: not ready after {a.timeout}s: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
