#!/usr/bin/env bash
# The huntmesh demo: three nodes on 127.0.0.1, a harmless stand-in miner on
# this host, and one signed hunt that finds it. Every process it starts is
# stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
work=${DEMO_DIR:-$here/.demo}
bin=$here/bin/huntmesh
rm -rf "$work"
mkdir -p "$work/bin"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building the stand-in miner (inert: it dials a local port and idles)"
go build -o "$work/bin/miner" "$here/demo/standin"
cp "$work/bin/miner" "$work/bin/pool"

say "Making an analyst key and a trust file"
"$bin" keygen --out "$work/analyst" --name analyst@demo >/dev/null
printf 'hunt,query %s\n' "$(cat "$work/analyst.pub")" >"$work/trust"
cat "$work/trust"

wait_socket() {
  for _ in $(seq 1 100); do
    [ -S "$1/control.sock" ] && return 0
    sleep 0.1
  done
  echo "node with data dir $1 did not start; its log:" >&2
  cat "$1.log" >&2
  return 1
}

# Nodes b and c stand for other hosts: all three run on this machine, so
# they replay saved host state (the scenario's clean web server) instead of
# reading this host's process table.
start_node() {
  local name=$1 port=$2; shift 2
  "$bin" node --data-dir "$work/$name" --trust "$work/trust" --mdns=false --nice 0 \
    --listen "/ip4/127.0.0.1/tcp/$port" --listen "/ip4/127.0.0.1/udp/$port/quic-v1" \
    --host "$name" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_socket "$work/$name"
}

say "Starting three nodes on 127.0.0.1"
start_node node-a 47101 --label role=app --label site=demo
addr_a=$("$bin" status --data-dir "$work/node-a" --addr)
web=$here/testdata/cryptominer/web-01
start_node node-b 47102 --label role=web --label site=demo --peer "$addr_a" \
  --replay-processes "$web/processes.json" --replay-connections "$web/connections.json" \
  --root "$web/root"
start_node node-c 47103 --label role=web --label site=demo --peer "$addr_a" \
  --replay-processes "$web/processes.json" --replay-connections "$web/connections.json" \
  --root "$web/root"

say "Starting the stand-in pool on 127.0.0.1:3333 and the stand-in miner"
"$work/bin/pool" --listen 127.0.0.1:3333 &
pids+=($!)
"$work/bin/miner" --url stratum+tcp://127.0.0.1:3333 --donate-level 1 \
  --cpu-max-threads-hint 50 -a rx/0 &
pids+=($!)

say "Waiting for the mesh to see all three nodes"
for _ in $(seq 1 150); do
  live=$("$bin" peers --data-dir "$work/node-a" | grep -c ' live ' || true)
  [ "$live" -ge 2 ] && break
  sleep 0.2
done
"$bin" peers --data-dir "$work/node-a"

say "Hunting: processes and connections, IoCs port 3333 and process name 'miner'"
"$bin" hunt run --data-dir "$work/node-a" --key "$work/analyst.key" --analyst analyst@demo \
  --collect processes,connections --ioc-port 3333 --ioc-process miner \
  --target all --timeout 20s | tee "$work/hunt.out"

task=$(awk '/^task /{print $2; exit}' "$work/hunt.out")
say "Reading the stored answers again: huntmesh results $task"
"$bin" results --data-dir "$work/node-a" "$task"

say "A forged hunt (signed by a key no node trusts) is refused"
"$bin" keygen --out "$work/intruder" >/dev/null
if "$bin" hunt run --data-dir "$work/node-a" --key "$work/intruder.key" --timeout 3s \
  >"$work/forged.out" 2>&1; then
  echo "unexpected: the forged hunt was accepted" >&2
  exit 1
fi
cat "$work/forged.out"

grep -q 'DETECTION' "$work/hunt.out" || { echo "demo failed: no detection" >&2; exit 1; }
say "Done. Logs are in $work/*.log"
