#!/usr/bin/env python3
"""Open N idle WebSocket-over-TLS connections through a proxy and hold them.

Each connection: TLS (ALPN http/1.1 only, certificate checked against --ca for
--sni), the HTTP/1.1 Upgrade request, a check of the 101 and of
Sec-WebSocket-Accept, then one small masked text frame whose echo must come
back from the backend (so the tunnel is proven end to end). Then the socket is
left idle.

Prints one line "OPEN <ok> FAILED <failed> FIRST_ERROR <text>" once every
connection has been attempted, then holds everything open until SIGTERM/SIGINT
(or exits at once with --exit).

With --mode http, each connection sends one keep-alive GET of --path and reads the
whole response instead (idle HTTPS connections, for the flood workload).

Usage: ws_idle.py --port P --conns N [--host 127.0.0.1] [--sni localhost]
                  [--ca cert.pem] [--path /api/v4/websocket] [--parallel 64]
                  [--mode ws|http]
"""

import argparse
import asyncio
import base64
import hashlib
import os
import signal
import ssl
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsError(Exception):
    pass


async def open_http(args, ctx, held, timeout):
    """One keep-alive HTTPS request, its response read whole, then the connection left idle."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(args.host, args.port, ssl=ctx, server_hostname=args.sni),
        timeout,
    )
    try:
        writer.write(f"GET {args.path} HTTP/1.1\r\nHost: {args.sni}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b"\r\n", 1)[0]
        if b" 200" not in status:
            raise WsError(f"status line {status!r}")
        length = 0
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await asyncio.wait_for(reader.readexactly(length), timeout)
    except BaseException:
        writer.close()
        raise
    held.append(writer)


async def open_one(args, ctx, held, timeout):
    if args.mode == "http":
        return await open_http(args, ctx, held, timeout)
    key = base64.b64encode(os.urandom(16))
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(args.host, args.port, ssl=ctx, server_hostname=args.sni),
        timeout,
    )
    try:
        req = (
            f"GET {args.path} HTTP/1.1\r\nHost: {args.sni}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: https://{args.sni}\r\n"
        ).encode() + b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
        writer.write(req)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b"\r\n", 1)[0]
        if b" 101" not in status:
            raise WsError(f"status line {status.decode(errors='replace')!r}")
        want = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if want not in head:
            raise WsError("bad Sec-WebSocket-Accept")
        payload = b"hello"
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        writer.write(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
        await writer.drain()
        echo = await asyncio.wait_for(reader.readexactly(2 + len(payload)), timeout)
        if echo[2:] != payload:
            raise WsError(f"bad echo {echo!r}")
    except BaseException:
        writer.close()
        raise
    held.append(writer)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("--ca", default=None, help="PEM to trust (default: no verification)")
    ap.add_argument("--path", default="/api/v4/websocket")
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--exit", action="store_true", help="exit right after reporting")
    ap.add_argument("--mode", choices=["ws", "http"], default="ws",
                    help="ws: WebSocket tunnels; http: one HTTPS request each, then idle keep-alive")
    args = ap.parse_args()

    ctx = ssl.create_default_context(cafile=args.ca) if args.ca else ssl._create_unverified_context()
    ctx.set_alpn_protocols(["http/1.1"])

    held = []
    errors = []
    sem = asyncio.Semaphore(args.parallel)

    async def guarded():
        async with sem:
            try:
                await open_one(args, ctx, held, args.timeout)
            except Exception as e:  # noqa: BLE001 - report any failure
                errors.append(f"{type(e).__name__}: {e}")

    await asyncio.gather(*(guarded() for _ in range(args.conns)))
    first = errors[0].replace("\n", " ") if errors else "-"
    print(f"OPEN {len(held)} FAILED {len(errors)} FIRST_ERROR {first}", flush=True)

    if not args.exit:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    for w in held:
        w.close()
    return 0 if not errors else 3


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
