#!/usr/bin/env bash
# Starts a 3-node raft-kv cluster on localhost (ports 21001-21003, data in
# ${RAFT_KV_DIR:-/tmp/raft-kv}/<id>), makes it one cluster (init on node 1,
# nodes 2 and 3 added as learners, then all three made voters), writes and
# reads one key, and leaves the nodes running. Stop them with:
#   kill $(cat "${RAFT_KV_DIR:-/tmp/raft-kv}"/*.pid)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${RAFT_KV_DIR:-/tmp/raft-kv}
cargo build --release -q -p raft-kv
bin=target/release/raft-kv
mkdir -p "$dir"
for id in 1 2 3; do
    "$bin" --id "$id" --addr "127.0.0.1:2100$id" --dir "$dir/$id" >"$dir/$id.log" 2>&1 &
    echo $! >"$dir/$id.pid"
done
call() { curl -sS --retry 20 --retry-connrefused --retry-delay 1 -H 'content-type: application/json' "$@"; echo; }
call -X POST 127.0.0.1:21001/cluster/init -d '{"nodes":{"1":"127.0.0.1:21001"}}'
call -X POST 127.0.0.1:21001/cluster/add-learner -d '{"id":2,"addr":"127.0.0.1:21002"}'
call -X POST 127.0.0.1:21001/cluster/add-learner -d '{"id":3,"addr":"127.0.0.1:21003"}'
call -X POST 127.0.0.1:21001/cluster/change-membership -d '{"members":[1,2,3]}'
call -X POST 127.0.0.1:21001/kv/put -d '{"key":"hello","value":"world"}'
call -X POST 127.0.0.1:21001/kv/get -d '{"key":"hello"}'
echo "cluster up: nodes on 127.0.0.1:21001-21003, logs and pids in $dir"
