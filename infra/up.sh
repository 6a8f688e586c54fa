#!/usr/bin/env bash
# `make up`: the REST API, dagster-webserver (the UI) and dagster-daemon (queue, schedules, sensors,
# automation) on 127.0.0.1, all on the instance under $WORKBENCH_HOME/dagster.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
API_PORT=${API_PORT:-8321}
DAGSTER_PORT=${DAGSTER_PORT:-3000}
export WORKBENCH_HOME=${WORKBENCH_HOME:-$PWD/.workbench}
export DAGSTER_HOME="$WORKBENCH_HOME/dagster"
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""
# The same dagster.yaml (SQLite storage, telemetry off, queued run coordinator, pools) the API and
# `make demo` use: created when missing, never overwritten.
"$VENV/bin/python" -c "from workbench.compute import ensure_dagster_home; from workbench.config import Settings; ensure_dagster_home(Settings())"

pids=()
stop() {
  trap - INT TERM EXIT
  # Each child leads its own process group (setsid): signal the groups, which also reach
  # dagster's code servers. SIGTERM, not SIGINT: a non-interactive shell starts background
  # commands with SIGINT ignored; uvicorn and dagster shut down cleanly on SIGTERM.
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 1 20); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  echo "stopped"
}
trap stop INT TERM EXIT

setsid "$VENV/bin/workbench" serve --host 127.0.0.1 --port "$API_PORT" & pids+=($!)
setsid "$VENV/bin/dagster-webserver" -w workspace.yaml -h 127.0.0.1 -p "$DAGSTER_PORT" & pids+=($!)
setsid "$VENV/bin/dagster-daemon" run -w workspace.yaml & pids+=($!)

for _ in $(seq 1 120); do
  api=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/healthz" || true)
  ui=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$DAGSTER_PORT/server_info" || true)
  [[ "$api" == 200 && "$ui" == 200 ]] && break
  sleep 1
done
cat <<MSG

  REST API    http://127.0.0.1:$API_PORT   (docs at /docs, OpenAPI at /openapi.json)
  Dagster UI  http://127.0.0.1:$DAGSTER_PORT   (assets at /assets, runs at /runs; the daemon is running)
  home        $WORKBENCH_HOME

  Ctrl-C stops all three.
MSG
wait
