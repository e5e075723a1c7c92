# bench/lib.sh: the set-up bench/instructions and bench/ab share (sourced, not run).
# One mm-edge-like workload: an nginx backend on CPU 0 serving an 1,800-byte JSON at /posts,
# a self-signed P-256 certificate for localhost, ephemeral loopback ports, one work dir that
# is removed on exit together with every process started.

# bench_setup PREFIX [WS_PORT]: makes $WORK (/tmp/PREFIX.XXXXXX), the certificate and
# posts.json, starts the backend ($BACKEND is its port), and arms the cleanup of $WORK and of
# every pid in PIDS. The backend also takes uploads (POST /upload, any size up to 1 GiB, answered
# 204) and, given WS_PORT, hands /api/v4/websocket to a WebSocket server there (ws_backend.py).
bench_setup() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$WORK"
  PIDS=()
  trap bench_cleanup EXIT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1
  head -c 1800 /dev/zero | tr '\0' 'x' >"$WORK/posts.json"
  chmod 644 "$WORK/posts.json"
  BACKEND=$(port)
  mkdir -p "$WORK/backend"
  local ws_location=""
  [ -n "${2:-}" ] && ws_location="        location /api/v4/websocket {
            proxy_pass http://127.0.0.1:$2; proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection upgrade;
        }"
  cat >"$WORK/backend/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/backend/nginx.pid;
error_log $WORK/backend/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/backend/tmp;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$BACKEND;
        location = /posts { default_type application/json; alias $WORK/posts.json; }
        location = /upload { client_max_body_size 1g; return 204; }
$ws_location
    }
}
CONF
  taskset -c 0 nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf" -e "$WORK/backend/error.log" &
  PIDS+=($!)
}

bench_cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# port: a free ephemeral port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# edge_env HTTPS_PORT STATE_DIR: the environment (for `env -i`) of an mm-edge in front of the
# backend: one worker, the certificate above, warnings only, the access log off, the rate
# limiter off unless RL=true (then with limits nothing reaches). $EDGE_HTTP is its plain
# listener (host:port).
edge_env() {
  EDGE_HTTP="127.0.0.1:$(port)"
  EDGE_ENV=(PATH="$PATH" MM_EDGE_WORKERS=1 MM_EDGE_HTTPS_LISTEN="127.0.0.1:$1"
    MM_EDGE_HTTP_LISTEN="$EDGE_HTTP" MM_EDGE_UPSTREAMS="http://127.0.0.1:$BACKEND"
    MM_EDGE_TLS_CERT="$WORK/cert.pem" MM_EDGE_TLS_KEY="$WORK/key.pem" MM_EDGE_STATE_DIR="$2"
    MATTERMOST_HOST=localhost MATTERMOST_ENABLE_RATE_LIMIT="${RL:-false}"
    MATTERMOST_RATE_LIMIT_QPS=1000000 MATTERMOST_RATE_LIMIT_BURST=1000000 MM_EDGE_LOG=warn MM_EDGE_ACCESS_LOG=off)
}

# edge_up HTTPS_PORT PID LOG [SECONDS]: waits (up to SECONDS, default 30) until the edge answers
# /.mm-edge/healthz; if it exits first or does not answer in time, prints LOG and returns 1.
edge_up() {
  local _
  for _ in $(seq $((${4:-30} * 10))); do
    curl -sk -o /dev/null "https://127.0.0.1:$1/.mm-edge/healthz" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "mm-edge (pid $2) did not answer on port $1; its log:" >&2
  cat "$3" >&2
  return 1
}
