#!/usr/bin/env bash
# Run every benchmark of the project with its yardsticks (sha256sum, yara -r,
# ps: the sub-benchmarks named after them), the idle footprint of one real
# node, and a simulated mesh; write one report with ratios.
#
# Environment:
#   BENCH_OUT         report path (bench-report.txt)
#   BENCH_TIME        go test -benchtime (3x)
#   BENCH_PKGS        packages to benchmark (./...)
#   IDLE_SECS         how long the idle node is sampled (60)
#   SIM_NODES         nodes of the simulated mesh; 0 skips it (200)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${BENCH_OUT:-bench-report.txt}
benchtime=${BENCH_TIME:-3x}
pkgs=${BENCH_PKGS:-./...}
idle=${IDLE_SECS:-60}
sim_nodes=${SIM_NODES:-200}
bin=$here/bin/huntmesh
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

raw=$work/bench.txt
{
  echo "huntmesh benchmark report"
  echo "date     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "machine  $(nproc) cpus, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  echo "go       $(go version | awk '{print $3}')"
  echo "tools    $(sha256sum --version | head -1); yara $(yara --version 2>/dev/null || echo missing);" \
    "$(ps --version 2>&1 | head -1)"
  echo
} >"$out"

# 1. Every benchmark; yardsticks run in the same invocation.
echo "== go test -bench (benchtime $benchtime) ==" | tee -a "$out"
go test -run '^$' -bench . -benchmem -benchtime "$benchtime" $pkgs 2>&1 | tee "$raw" |
  grep -E '^(Benchmark|ok|FAIL|pkg:|---)' >>"$out" || true
echo >>"$out"

# 2. Ratios: in each group (a benchmark name up to its last /), every entry
# against every yardstick (an entry named after sha256sum, yara-cli or ps).
echo "== ratios to yardsticks (ns/op; below 1.00 is faster than the yardstick) ==" >>"$out"
awk '
  function width(leaf) {
    if (!match(leaf, /-[wWpP][0-9]+/)) return ""
    return substr(leaf, RSTART + 2, RLENGTH - 2)
  }
  $1 ~ /^Benchmark/ && $4 == "ns/op" {
    name = $1; sub(/-[0-9]+$/, "", name)
    n = split(name, parts, "/"); leaf = parts[n]
    group = name; sub(/\/[^\/]*$/, "", group)
    if (group == name) next
    ns[name] = $3; grp[name] = group; lf[name] = leaf
    if (leaf ~ /^(sha256sum|yara-cli|ps)/) yard[name] = 1
    order[++count] = name
  }
  END {
    for (i = 1; i <= count; i++) {
      y = order[i]; if (!(y in yard)) continue
      for (j = 1; j <= count; j++) {
        e = order[j]; if (e in yard || grp[e] != grp[y]) continue
        # Compare like with like: workers or processes 1 with 1, 2 with 2
        # (the number after -w, -P or -p in the name).
        ew = width(lf[e]); yw = width(lf[y])
        if (ew != "" && yw != "" && ew != yw) continue
        printf "  %-55s %8.2fx  %s\n", e, ns[e] / ns[y], y
      }
    }
  }' "$raw" >>"$out"
echo >>"$out"

# Ratios some benchmarks measure themselves, against a yardstick or a
# baseline run in the same benchmark (units like x-sha256sum, left/right-*,
# records/sha256-KiB).
echo "== ratios the benchmarks report (same-invocation yardsticks) ==" >>"$out"
awk '
  $1 ~ /^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name); line = ""
    for (i = 3; i + 1 <= NF; i += 2) {
      unit = $(i + 1)
      if (unit ~ /^x-|\/right|sha256|vs/) line = line sprintf("  %s %s", $i, unit)
    }
    if (line != "") printf "  %-55s%s\n", name, line
  }' "$raw" >>"$out"
echo >>"$out"

# 3. Idle footprint: two real nodes on 127.0.0.1, the first sampled.
echo "== idle footprint of one real node (${idle}s, one peer) ==" >>"$out"
[ -x "$bin" ] || go build -o "$bin" .
"$bin" keygen --out "$work/analyst" --name bench >/dev/null
printf 'hunt,query %s\n' "$(cat "$work/analyst.pub")" >"$work/trust"
start_node() {
  local name=$1; shift
  "$bin" node --data-dir "$work/$name" --trust "$work/trust" --mdns=false \
    --listen /ip4/127.0.0.1/tcp/0 --host "$name" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    [ -S "$work/$name/control.sock" ] && return 0
    sleep 0.1
  done
  echo "node $name did not start:" >&2
  cat "$work/$name.log" >&2
  return 1
}
start_node idle-a
pid_a=${pids[0]}
addr=$("$bin" status --data-dir "$work/idle-a" --addr)
start_node idle-b --peer "$addr"
sleep 5 # let the start-up settle before sampling

tick=$(getconf CLK_TCK)
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_of() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
c0=$(cpu_of "$pid_a"); t0=$(date +%s.%N)
rss_max=0; rss_sum=0; samples=0
for _ in $(seq 1 "$idle"); do
  sleep 1
  r=$(rss_of "$pid_a")
  rss_sum=$((rss_sum + r)); samples=$((samples + 1))
  [ "$r" -gt "$rss_max" ] && rss_max=$r
done
c1=$(cpu_of "$pid_a"); t1=$(date +%s.%N)
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v tick="$tick" \
  -v sum="$rss_sum" -v n="$samples" -v mx="$rss_max" 'BEGIN {
    cpu = (c1 - c0) / tick / (t1 - t0) * 100
    printf "  RSS mean %.1f MiB, max %.1f MiB (target 50 MiB)\n", sum / n / 1024, mx / 1024
    printf "  CPU %.2f%% of one core over %.0f s (target 0.5%%)\n", cpu, t1 - t0
  }' >>"$out"
echo >>"$out"

# 4. A simulated mesh, for the per-node cost at scale (docs/scale.md).
if [ "$sim_nodes" -gt 0 ]; then
  echo "== huntmesh sim --nodes $sim_nodes --runs hunt,query ==" >>"$out"
  "$bin" sim --nodes "$sim_nodes" --runs hunt,query --log-level error >>"$out" 2>&1
fi

echo "report written to $out"
