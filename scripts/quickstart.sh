#!/usr/bin/env bash
# deepeft quickstart: set up, run the quickstart study (theory vs Monte-Carlo ensembles for three
# activations x three widths x two depths), write its HTML report and print where it is.
# A few minutes on 2 CPU cores.  Re-running skips the points already computed.
#   bash scripts/quickstart.sh [OUTPUT_DIR]        (default: ./quickstart-results)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$PWD/quickstart-results}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e "$ROOT"

deepeft() { python3 -c 'import sys; from deepeft.cli import main; sys.exit(main())' "$@"; }
deepeft study run "$ROOT/examples/quickstart.toml" --out "$OUT"
deepeft study report "$OUT"
echo
echo "Open the report: $OUT/report/index.html"
