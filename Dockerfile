# mm-edge container image: the HTTPS edge proxy in front of Mattermost.
#
#   docker build -t mm-edge .
#   docker run -d -p 80:80 -p 443:443 -e MATTERMOST_HOST=chat.example.com \
#     -e MM_EDGE_UPSTREAMS=http://mattermost:8065 mm-edge
#
# Works with BuildKit (the default builder since Docker Engine 23) and with the
# legacy builder: no RUN --mount, no heredocs.

# ---------------------------------------------------------------------------
# Base images. Builder: the official Rust image, pinned to the toolchain the
# crate is tested with. Runtime: distroless "cc". Debian 13 (trixie) in both,
# so the glibc the binary is linked against is the glibc it runs on.
# Both are build arguments so tests/container.rs can build this file with
# local stand-ins (--build-arg BUILDER_IMAGE=... --build-arg RUNTIME_IMAGE=...);
# a plain `docker build` uses these defaults. (ARGs used in FROM must come
# before the first FROM.)
# ---------------------------------------------------------------------------
ARG RUST_VERSION=1.95
ARG BUILDER_IMAGE=rust:${RUST_VERSION}-trixie
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13

FROM ${BUILDER_IMAGE} AS builder

WORKDIR /build

# Dependency cache: build every dependency against placeholder sources first.
# This layer is rebuilt only when Cargo.toml or Cargo.lock change, so an edit
# in src/ recompiles mm-edge alone. (If the crate gains a build.rs or explicit
# [[bin]]/[[bench]] targets, add their placeholders here.)
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real sources. COPY keeps the files' original mtimes, which can be older
# than the placeholder build above; touch them so cargo rebuilds the crate
# instead of shipping the placeholder binary.
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/mm-edge /out/mm-edge \
    && install -d -m 0700 /out/state \
    && install -d -m 0750 /out/mattermost-config \
    && /out/mm-edge --version | grep -F mm-edge

# ---------------------------------------------------------------------------
# Runtime: distroless "cc" = glibc, libgcc, CA certificates, tzdata; no shell,
# no package manager, no curl (hence the built-in `mm-edge healthcheck`).
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

LABEL org.opencontainers.image.title="mm-edge" \
      org.opencontainers.image.description="HTTPS edge proxy for self-hosted Mattermost: TLS, redirects, rate limits, CORS, config writer" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

COPY --from=builder /out/mm-edge /usr/local/bin/mm-edge

# The process runs as uid/gid 2000, the user of the official Mattermost image
# (mattermost/mattermost-*-edition). In docker compose mm-edge updates
# Mattermost's config.json in a shared volume; the writer keeps the file's
# owner, and only the same (non-root) uid can replace a file it owns, so both
# containers run as 2000:2000.
#
# State dir (the ACME account and certificate, or the self-signed one) and the mount
# point for Mattermost's config directory, both owned by 2000:2000. Docker
# copies this ownership into an empty named or anonymous volume the first
# time it is mounted here. A bind mount (-v /host/dir:/var/lib/mm-edge) keeps
# the host's ownership instead: `chown 2000:2000 /host/dir` first.
COPY --from=builder --chown=2000:2000 /out/state /var/lib/mm-edge
COPY --from=builder --chown=2000:2000 /out/mattermost-config /mattermost/config

# Defaults for a container. MATTERMOST_HOST has no useful default and must be
# given (-e MATTERMOST_HOST=chat.example.com); everything else can be
# overridden with -e the same way. 127.0.0.1:8065 (the binary's default
# upstream) means nothing inside a container, so the image points at a
# container called "mattermost" on the same Docker network. The listeners keep
# the binary's defaults, [::]:80 and [::]:443: IPv6 and IPv4, or IPv4 alone
# (0.0.0.0) in a container without IPv6.
ENV MM_EDGE_STATE_DIR=/var/lib/mm-edge \
    MM_EDGE_UPSTREAMS=http://mattermost:8065

# Binding 80 and 443 as a non-root user, without any capability:
# Docker (since 20.10, moby/moby#41030) and Podman set the namespaced sysctl
# net.ipv4.ip_unprivileged_port_start=0 in every container that has its own
# network namespace, so any user may bind any port there. We deliberately do
# not rely on a file capability (setcap cap_net_bind_service=+ep): it is lost
# by builders that do not copy xattrs, it is ignored under no-new-privileges,
# and it makes exec fail outright when the capability is dropped (cap_drop: ALL).
# Where the sysctl is not set (--network host, Kubernetes without the
# sysctl, some CRI-O setups), either
#   - add `--sysctl net.ipv4.ip_unprivileged_port_start=0`
#     (Kubernetes: securityContext.sysctls, a "safe" sysctl since 1.22), or
#   - listen on high ports and map them:
#       -e MM_EDGE_HTTP_LISTEN=[::]:8080 -e MM_EDGE_HTTPS_LISTEN=[::]:8443 \
#       -e MATTERMOST_SITE_URL=https://chat.example.com -p 80:8080 -p 443:8443
#     (set MATTERMOST_SITE_URL: the derived one would carry ":8443").
USER 2000:2000

EXPOSE 80 443
VOLUME ["/var/lib/mm-edge"]

# GETs /.mm-edge/healthz on the configured listener (HTTPS when TLS is on);
# exits 0 only when the edge answers. Uses the container's env like `run`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/mm-edge", "healthcheck"]

# SIGTERM: stop accepting, drain in-flight requests for the shutdown grace
# period (30 s by default), exit 0. `docker stop` waits only 10 s before
# SIGKILL; use `docker run --stop-timeout 40` / compose `stop_grace_period: 40s`.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/mm-edge"]
CMD ["run"]
