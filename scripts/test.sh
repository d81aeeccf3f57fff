#!/usr/bin/env bash
# Set up, then run the test suite. Postgres-backed tests run when LORAFLOW_TEST_POSTGRES_URL is set
# (.ci/run sets it); GPU tests run only where CUDA is available.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PREFECT_SERVER_ANALYTICS_ENABLED=false TOKENIZERS_PARALLELISM=false
export LORAFLOW_HOME=${LORAFLOW_HOME:-$(mktemp -d)/loraflow-home}
exec .venv/bin/python -m pytest -q -rs --durations=15 "$@"
