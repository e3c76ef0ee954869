#!/usr/bin/env bash
# make invoke FUNCTION=<function> [EVENT=events/<function>.json]
#
# Replays a sample event against the local emulator the offline way, with no
# Docker: `cargo lambda watch` runs the function behind a local Lambda
# Runtime API with the environment template.yaml would give it, and
# `cargo lambda invoke` sends it the event. Uses AWS_ENDPOINT_URL if set,
# else starts moto on a free loopback port and stops it afterwards. Before
# the invocation, the sample ticket is run through the stages before
# FUNCTION, so the users and secrets the sample names exist.
set -euo pipefail
cd "$(dirname "$0")/.."

fn=${FUNCTION:?"set FUNCTION to create-user, issue-credentials, notify-user, rotate-keys, offboard-user or change-access"}
event=${EVENT:-events/$fn.json}
[ -f "$event" ] || { echo "invoke: no event file $event" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # url, seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "invoke: nothing answered at $1" >&2; return 1
}

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  port=$(free_port)
  MOTO_IAM_LOAD_MANAGED_POLICIES=true python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
  pids+=($!)
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  wait_for "$AWS_ENDPOINT_URL/moto-api/" 90
  echo "emulator: started moto_server at $AWS_ENDPOINT_URL"
fi
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=${AWS_REGION:-us-east-1}

cargo run --quiet -p tests --bin run-local -- --prepare "$fn" >"$work/env"
echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" >>"$work/env"

invoke_port=$(free_port)
cargo lambda watch --quiet --ignore-changes --invoke-port "$invoke_port" --env-file "$work/env" \
  --package "$fn" >"$work/watch.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$invoke_port/" 600 || { cat "$work/watch.log" >&2; exit 1; }
cargo lambda invoke "$fn" --invoke-port "$invoke_port" --data-file "$event" --output-format json
echo
# A sample the stage would not trust is settled without a batch item
# failure: only the log tells. A sample must match what the earlier stages
# recorded for the sample ticket.
sleep 1
if grep -q untrusted_message "$work/watch.log"; then
  grep untrusted_message "$work/watch.log" >&2
  echo "invoke: $fn did not trust $event (see the line above)" >&2
  exit 1
fi
