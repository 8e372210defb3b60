#!/usr/bin/env sh
# Thin wrapper: ./infra/kafka.sh up|down|status|fetch [options]
# Runs infra/local_kafka.py with the repository's venv Python when there is one.
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
python="$root/.venv/bin/python"
[ -x "$python" ] || python=$(command -v python3 || command -v python)
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m infra.local_kafka "$@"
