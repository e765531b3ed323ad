#!/usr/bin/env bash
# End-to-end suite of the FileGrid compose stack (docker-compose.yml) on a real Docker engine.
#
#   e2e/compose/run.sh                 build the images (quick when cached), run every case
#   e2e/compose/run.sh --no-build      use the images already built
#   e2e/compose/run.sh --case NAME     run only the named case(s) (repeatable; setup always runs)
#   e2e/compose/run.sh --list          list the cases
#   e2e/compose/run.sh --keep          leave the stack running afterwards (for debugging)
#
# Exit status: 0 all cases passed, 1 a case failed, 77 no Docker engine answers (the suite
# cannot run here and says so).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "compose e2e: no Docker engine answers here; the suite cannot run (not counted)" >&2
    exit 77
fi
command -v python3 >/dev/null || { echo "compose e2e: python3 is required" >&2; exit 1; }

exec python3 "$here/compose_e2e.py" "$@"
