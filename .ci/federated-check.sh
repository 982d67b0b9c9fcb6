#!/usr/bin/env bash
# Federated learning as separate processes, for real (`make federated-check`, CI): one
# `dpkit federated server` and 3 `dpkit federated client` processes on 127.0.0.1 over TLS (a
# CA and a server certificate made here with openssl) train .ci/federated-check.yaml, with
# secure aggregation and then plain; each result must equal `dpkit run` of the same config
# (the simulation) bit for bit. Then a client of another config is refused by name.
# Every process is bounded by `timeout`. Usage: .ci/federated-check.sh DPKIT
set -euo pipefail
cd "$(dirname "$0")/.."
dpkit=$(realpath "${1:-.build/debug/dpkit}")
work=$(mktemp -d /tmp/dpkit-federated-check.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# One BLAS thread per process, the same in all: the same kernel and thread count give the same sums.
export OPENBLAS_NUM_THREADS=1
limit=(timeout --kill-after=10 120)

echo "== federated-check: certificates (openssl $(openssl version | cut -d' ' -f2))"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=DPKit CI CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
echo "subjectAltName=IP:127.0.0.1,DNS:localhost" > "$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null

# A free port: bind port 0 and read what the kernel chose.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# federate CONFIG NAME: the server and 3 clients; the result folder is $work/NAME.
federate() {
  local config=$1 name=$2 port
  port=$(free_port)
  local start=$SECONDS
  "${limit[@]}" "$dpkit" federated server "$config" --output "$work/$name" --listen "127.0.0.1:$port" \
    --tls-cert "$work/server.pem" --tls-key "$work/server.key" --processes 3 --timeout 60 > "$work/$name-server.log" 2>&1 &
  local server=$!
  pids+=("$server")
  local clients=()
  for i in 0 1 2; do
    "${limit[@]}" "$dpkit" federated client --connect "127.0.0.1:$port" --ca "$work/ca.pem" --config "$config" \
      --hosts "$i/3" --timeout 60 > "$work/$name-client$i.log" 2>&1 &
    clients+=($!)
    pids+=($!)
  done
  local status=0
  wait "$server" || status=$?
  for pid in "${clients[@]}"; do wait "$pid" || status=$?; done
  if [ $status != 0 ]; then
    echo "federated-check: $name failed (exit $status)"
    tail -5 "$work/$name-server.log" "$work/$name-client"*.log
    exit 1
  fi
  grep -q "done after 6 rounds" "$work/$name-client0.log" || { echo "federated-check: client 0 did not serve 6 rounds"; exit 1; }
  grep -q '"privacy_unit" *: *"user"' "$work/$name/manifest.json" \
    || { echo "federated-check: the manifest does not name the privacy unit user"; exit 1; }
  echo "federated-check: $name: server and 3 clients in $((SECONDS - start)) s"
}

echo "== federated-check: secure aggregation (simulation, then 3 client processes)"
"${limit[@]}" "$dpkit" run .ci/federated-check.yaml --output "$work/sim-secure" > "$work/sim-secure.log"
federate .ci/federated-check.yaml net-secure
.ci/compare-results.sh "$work/sim-secure" "$work/net-secure"

echo "== federated-check: plain DP-FedAvg"
grep -v "secure_aggregation:" .ci/federated-check.yaml > "$work/plain.yaml"
"${limit[@]}" "$dpkit" run "$work/plain.yaml" --output "$work/sim-plain" > "$work/sim-plain.log"
federate "$work/plain.yaml" net-plain
.ci/compare-results.sh "$work/sim-plain" "$work/net-plain"

echo "== federated-check: a client of another config is refused"
port=$(free_port)
"${limit[@]}" "$dpkit" federated server .ci/federated-check.yaml --output "$work/refused" --listen "127.0.0.1:$port" \
  --tls-cert "$work/server.pem" --tls-key "$work/server.key" --processes 1 --timeout 5 > "$work/refused-server.log" 2>&1 &
server=$!
pids+=("$server")
if "${limit[@]}" "$dpkit" federated client --connect "127.0.0.1:$port" --ca "$work/ca.pem" --config "$work/plain.yaml" \
  --hosts 0/1 > "$work/refused-client.log" 2>&1; then
  echo "federated-check: a client of another config was accepted"; exit 1
fi
grep -q "config hash" "$work/refused-client.log" || { echo "federated-check: the refusal does not name the config hash"; cat "$work/refused-client.log"; exit 1; }
if wait "$server"; then echo "federated-check: the server without clients succeeded"; exit 1; fi
grep -q "0/1" "$work/refused-server.log" || { echo "federated-check: the server's timeout does not name the missing client"; cat "$work/refused-server.log"; exit 1; }
echo "federated-check: passed"
