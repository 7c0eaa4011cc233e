#!/usr/bin/env bash
# Set up (once) and run Tally from a fresh clone. Needs only python3 >= 3.11.
#   ./dev.sh demo          sample company + synthetic signals + a full run + a summary
#   ./dev.sh test [ARGS]   the test suite (ARGS go to pytest, e.g. -m slow)
#   ./dev.sh lint          ruff check and ruff format --check (what CI runs before the tests)
#   ./dev.sh tally ARGS    any tally command, e.g. ./dev.sh tally ui
#   ./dev.sh bench ARGS    the benchmark harness
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

"$PYTHON" - <<'PY' || { echo "error: Tally needs Python >= 3.11 ($PYTHON is older)" >&2; exit 2; }
import sys; sys.exit(sys.version_info < (3, 11))
PY

if [ ! -x .venv/bin/python ]; then
  echo "setting up .venv (first run only)..." >&2
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing Tally and its dependencies into .venv..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -e '.[dev]' >&2
  rm -f .venv/.installed-* && touch "$stamp"
fi

cmd="${1:-demo}"
shift || true
case "$cmd" in
  demo)  exec .venv/bin/tally demo "$@" ;;
  test)  exec .venv/bin/python -m pytest "$@" ;;
  lint)  .venv/bin/ruff check . && exec .venv/bin/ruff format --check . ;;
  tally) exec .venv/bin/tally "$@" ;;
  bench) exec .venv/bin/python -m benchmarks.run "$@" ;;
  *) echo "usage: ./dev.sh demo | test [pytest args] | lint | tally ARGS | bench ARGS" >&2; exit 2 ;;
esac
