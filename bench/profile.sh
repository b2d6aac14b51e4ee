#!/usr/bin/env bash
# Instruction counts per request (valgrind --tool=callgrind), repeatable on a shared machine
# where wall-clock figures are not: the same build and the same requests give the same counts
# within about 1%.
#
#   bench/profile.sh [proxy|verify|all]
#
# proxy:  bare Pingora, authgate with auth = "none", and authgate with auth = "required" and
#         one repeated token (a cache hit), each under callgrind behind the same nginx
#         upstream; WARMUP requests first, then the counters are zeroed, REQUESTS requests are
#         sent over CONNS keep-alive connections, and the counters dumped.
# verify: examples/verify_costs under callgrind, counting only its measured loop: a whole
#         uncached verification, a cached one, the RS256 check alone, cache insertion with
#         many distinct tokens and a cache hit.
# Prints Ir per request (or per operation) and the top functions by their own cost. Keeps the
# callgrind files in OUT (default: a new temporary directory) for callgrind_annotate.
# Knobs: REQUESTS=2000 WARMUP=300 CONNS=8 VERIFY_COUNT=200 INSERT_COUNT=50000 TOP=25
# AUTHGATE_BIN=... BARE_BIN=... VERIFY_BIN=... MINT_BIN=... (prebuilt binaries skip the build).
set -euo pipefail
cd "$(dirname "$0")/.."

WHAT=${1:-all}
REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-300}
CONNS=${CONNS:-8}
VERIFY_COUNT=${VERIFY_COUNT:-200}
INSERT_COUNT=${INSERT_COUNT:-50000}
TOP=${TOP:-25}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/authgate-profile.XXXXXX")}
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/authgate-profile-run.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM
say() { printf '%s\n' "$*" >&2; }

need_apt=()
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
if [ "${#need_apt[@]}" -gt 0 ]; then
  say "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "${AUTHGATE_BIN:-}" ] || [ -z "${BARE_BIN:-}" ] || [ -z "${VERIFY_BIN:-}" ] || [ -z "${MINT_BIN:-}" ]; then
  say "building (release)"
  cargo build --release --quiet --bin authgate --example bare_proxy --example verify_costs --example mint_tokens
  target="${CARGO_TARGET_DIR:-target}"
  MINT_BIN=${MINT_BIN:-$target/release/examples/mint_tokens}
  AUTHGATE_BIN=${AUTHGATE_BIN:-$target/release/authgate}
  BARE_BIN=${BARE_BIN:-$target/release/examples/bare_proxy}
  VERIFY_BIN=${VERIFY_BIN:-$target/release/examples/verify_costs}
fi
RUST_LOG=warn "$AUTHGATE_BIN" keys generate --dir "$work/keys" >/dev/null

# top FILE DIVISOR: the heaviest functions by their own cost, per request or operation.
top() {
  callgrind_annotate --threshold=100 "$1" 2>/dev/null | awk -v n="$2" -v top="$TOP" '
    /PROGRAM TOTALS/ { total = $1; gsub(",", "", total); printf "  total: %.0f Ir per request\n", total / n }
    /file:function/ { body = 1; next }
    body && NF >= 3 && shown < top {
      # Frames still on the stack at a dump (thread starts, the runtime loop) carry the total.
      ir = $1; gsub(",", "", ir); if (ir + 0 == 0 || ir + 0 >= 0.98 * total) next
      fn = $0; sub(/^ *[0-9,]+ *\([^)]*\) */, "", fn); sub(/ \[.*$/, "", fn); sub(/^[^:]*:/, "", fn)
      printf "  %9.0f  %s\n", ir / n, substr(fn, 1, 150); shown++
    }'
}

profile_verify() {
  for what in uncached cached rsa cache-hit "cache-insert $INSERT_COUNT" "distinct 100"; do
    set -- $what
    local name=$1 count=${2:-$VERIFY_COUNT}
    valgrind --tool=callgrind --toggle-collect='*verify_costs::measure*' \
      --callgrind-out-file="$OUT/verify-$name.out" "$VERIFY_BIN" "$work/keys" "$name" "$count" \
      >/dev/null 2>"$work/valgrind.log"
    printf '\n### verify: %s (per operation, %s operations)\n' "$name" "$count"
    top "$OUT/verify-$name.out" "$count"
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq "${2:-3000}"); do
    curl -s -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.02
  done
  say "no answer from $1"; return 1
}

# load URL COUNT [TOKEN]: COUNT GET requests over CONNS keep-alive connections; fails unless
# every answer is 200.
load() {
  python3 - "$1" "$2" "$CONNS" "${3:-}" <<'EOF'
import http.client, sys, threading, urllib.parse
url, count, conns, token = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
u = urllib.parse.urlsplit(url)
headers = {"Authorization": f"Bearer {token}"} if token else {}
bad = []
def worker(n):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    for _ in range(n):
        c.request("GET", u.path, headers=headers)
        r = c.getresponse(); r.read()
        if r.status != 200: bad.append(r.status)
threads = [threading.Thread(target=worker, args=(count // conns + (i < count % conns),)) for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if bad: sys.exit(f"{len(bad)} answers were not 200: {sorted(set(bad))}")
EOF
}

# measure NAME PID URL [TOKEN]
measure() {
  local name=$1 pid=$2 url=$3 token=${4:-}
  load "$url" "$WARMUP" "$token"
  callgrind_control -z "$pid" >/dev/null
  load "$url" "$REQUESTS" "$token"
  callgrind_control -d "$name" "$pid" >/dev/null
  sleep 0.5
  local file
  file=$(ls -t "$OUT"/proxy-"$name".out* 2>/dev/null | head -1)
  printf '\n### proxy: %s (per request, %s requests, %s connections)\n' "$name" "$REQUESTS" "$CONNS"
  top "$file" "$REQUESTS"
}

profile_proxy() {
  local UP BARE AG AG_ADMIN
  UP=$(free_port); BARE=$(free_port); AG=$(free_port); AG_ADMIN=$(free_port)
  cat > "$work/upstream.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/upstream.pid;
error_log $work/upstream-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
  uwsgi_temp_path $work; scgi_temp_path $work;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } }
}
EOF
  "$NGINX" -e "$work/upstream-error.log" -c "$work/upstream.conf" & pids+=($!)
  wait_http "http://127.0.0.1:$UP/"

  valgrind --tool=callgrind --callgrind-out-file="$OUT/proxy-bare.out" \
    "$BARE_BIN" "127.0.0.1:$BARE" "127.0.0.1:$UP" 1 >/dev/null 2>"$work/bare.log" & pids+=($!)
  local bare_pid=$!
  wait_http "http://127.0.0.1:$BARE/"
  measure bare "$bare_pid" "http://127.0.0.1:$BARE/x"
  kill "$bare_pid"

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

[[routes]]
prefix = "/"
upstream = "127.0.0.1:$UP"
auth = "required"

[[routes]]
prefix = "/open"
upstream = "127.0.0.1:$UP"
auth = "none"
EOF
  local token
  token=$("$MINT_BIN" "$work/keys" "http://127.0.0.1:$AG" 1)
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/proxy-authgate.out" \
    "$AUTHGATE_BIN" serve --config "$work/authgate.toml" >/dev/null 2>"$work/authgate.log" & pids+=($!)
  local ag_pid=$!
  wait_http "http://127.0.0.1:$AG_ADMIN/readyz" 6000
  # Dumps of one process go to files named after the first one, with the dump's number.
  measure_ag() {
    local name=$1 url=$2 tok=${3:-}
    load "$url" "$WARMUP" "$tok"
    callgrind_control -z "$ag_pid" >/dev/null
    load "$url" "$REQUESTS" "$tok"
    callgrind_control -d "$ag_pid" >/dev/null
    sleep 0.5
    local file
    file=$(ls -t "$OUT"/proxy-authgate.out.* | head -1)
    mv "$file" "$OUT/proxy-$name.out"
    printf '\n### proxy: %s (per request, %s requests, %s connections)\n' "$name" "$REQUESTS" "$CONNS"
    top "$OUT/proxy-$name.out" "$REQUESTS"
  }
  measure_ag authgate-none "http://127.0.0.1:$AG/open/x"
  measure_ag authgate-required-cached "http://127.0.0.1:$AG/x" "$token"
  kill "$ag_pid"
}

case "$WHAT" in
  verify) profile_verify ;;
  proxy) profile_proxy ;;
  all) profile_verify; profile_proxy ;;
  *) say "usage: bench/profile.sh [proxy|verify|all]"; exit 2 ;;
esac
say "callgrind files in $OUT"
