#!/usr/bin/env bash
# Load benchmark of `tollgate serve` (docs/benchmarks.md, "Admission webhook").
#
# Starts the release binary on loopback with the bundled pack, then drives
# POST /validate with a realistic Pod CREATE AdmissionReview
# (engine/benches/data/pod-review.json) over TLS with keep-alive:
#   - wrk (closed loop) at 1, 16, 64 and 256 connections: p50, p99, throughput;
#   - oha (closed loop) at 1 connection: p50, p99 after a 1 s warm-up;
#   - oha (open loop, fixed rate, latency corrected) at $RATE reviews/s: p50, p99
#     over the whole run and over the steady state after a 1 s warm-up.
# It also prints the server's CPU time per review, read from /proc.
#
# Usage: engine/benches/serve.sh [DURATION_SECONDS] [RATE]
# Installs what it needs: wrk (Debian), oha (crates.io), openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
rate=${2:-5000}
port=${PORT:-18443}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
command -v oha >/dev/null || cargo install oha --locked --quiet
cargo build --release --quiet

work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
review=engine/benches/data/pod-review.json
cat > "$work/post.lua" <<EOF
wrk.method = "POST"
local f = io.open("$PWD/$review", "rb")
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/json"
EOF

TOLLGATE_CACHE_DIR="$work/cache" TOLLGATE_LOG=warn target/release/tollgate serve \
    --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --addr "127.0.0.1:$port" \
    > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
    curl -skf "https://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.2
done
url="https://127.0.0.1:$port/validate"
cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
ticks=$(getconf CLK_TCK)

echo "tollgate serve, bundled pack, $(wc -c < $review)-byte Pod CREATE review, ${duration}s per run, $(nproc) cores"
wrk -t2 -c16 -d3s -s "$work/post.lua" "$url" > /dev/null 2>&1 # warm-up
for connections in 1 16 64 256; do
    threads=$((connections < 2 ? 1 : 2))
    before=$(cpu)
    out=$(wrk -t$threads -c$connections -d${duration}s --latency -s "$work/post.lua" "$url" 2>&1)
    after=$(cpu)
    echo "$out" | awk -v c=$connections -v cpu=$((after - before)) -v hz=$ticks '
        / 50%/ {p50 = $2} / 99%/ {p99 = $2} /Requests\/sec/ {rps = $2} /requests in/ {n = $1}
        /Non-2xx|Socket errors/ {bad = bad " " $0}
        END {printf "wrk  c=%-4s rps=%-9s p50=%-9s p99=%-9s server cpu/review=%.0fus%s\n",
             c, rps, p50, p99, cpu * 1e6 / hz / n, bad}'
done

# One connection again with oha (closed loop, back to back), whose every
# request is recorded: a second generator for the service time, since wrk's
# p99 at one connection has moved with the hour on this shared machine while
# oha's has not (docs/benchmarks.md, session 8). The first second is left out.
oha --no-tui --insecure -z $((duration + 1))s -c 1 --db-url "$work/oha1.db" \
    -m POST -H "Content-Type: application/json" -D "$review" "$url" > /dev/null 2>&1
python3 - "$work/oha1.db" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT start, end, status FROM oha").fetchall()
d = sorted((end - start) * 1e3 for start, end, status in rows if start >= 1 and status == 200)
n = len(d)
print(f"oha  c=1    rps={n / max(rows[-1][1] - 1, 1e-9):<9.0f} p50={d[n // 2] * 1e3:.0f}us     "
      f"p99={d[min(n - 1, n * 99 // 100)]:.2f}ms  (after a 1 s warm-up, n={n})")
PY

# Open loop: oha schedules the requests at the fixed rate and measures each
# from its scheduled start (--latency-correction), so a stall is not hidden
# by the generator waiting for it. Every request is recorded (--db-url); the
# first second is the warm-up (64 TLS handshakes at once, with the
# requests scheduled meanwhile queueing behind them) and is reported apart,
# as wrk2 leaves out its calibration period: the steady figures are those of
# the requests scheduled after it.
warmup=1
before=$(cpu)
oha --no-tui --insecure --output-format json -z $((duration + warmup))s -q "$rate" --latency-correction -c 64 \
    --db-url "$work/oha.db" -m POST -H "Content-Type: application/json" -D "$review" "$url" > "$work/oha.json" 2> "$work/oha.err"
after=$(cpu)
python3 - "$work/oha.json" "$work/oha.db" "$rate" $((after - before)) "$ticks" "$warmup" <<'PY'
import json, sqlite3, sys
report = json.load(open(sys.argv[1]))
rate, cpu, hz, warmup = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
ok = report["statusCodeDistribution"].get("200", 0)
errors = sum(report.get("errorDistribution", {}).values())
p = report["latencyPercentiles"]
rows = sqlite3.connect(sys.argv[2]).execute(
    "SELECT start_latency_correction, end, status FROM oha").fetchall()
steady = sorted((end - start) * 1e3 for start, end, status in rows if start >= warmup and status == 200)
n = len(steady)
q = lambda f: steady[min(n - 1, int(n * f))]
print(f"oha  rate={rate:<5} achieved={report['summary']['requestsPerSec']:.0f} "
      f"whole run: p50={p['p50'] * 1e3:.2f}ms p99={p['p99'] * 1e3:.2f}ms "
      f"server cpu/review={cpu * 1e6 / hz / max(ok, 1):.0f}us errors={errors}")
print(f"oha  after the {warmup:g}s warm-up: n={n} p50={q(0.5):.2f}ms p90={q(0.9):.2f}ms "
      f"p99={q(0.99):.2f}ms p99.9={q(0.999):.2f}ms over 2 ms={100 * sum(x > 2 for x in steady) / max(n, 1):.2f}%")
PY
