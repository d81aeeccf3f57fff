#!/usr/bin/env bash
# The main job: set up, then run the full pipeline on the bundled example with the embedded defaults
# (Prefect's local API and MLflow on SQLite, both under ./.loraflow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
exec .venv/bin/loraflow run examples/quickstart/pipeline.yaml --out runs/quickstart "$@"
