#!/bin/bash
# On the GPU machine: install the carried wheels, run the GPU training tests, the evaluation benchmark, then the
# training benchmark. Usage: bash benchmarks/gpu_train_run.sh [setup|tests|eval|bench|all|tests+eval] [train_bench.py args...]
# (results under $OUT; setup only installs the wheels into /tmp/site and prints the versions)
set -u
what=${1:-all}; shift || true
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/train/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
# trl 1.16 declares transformers>=4.56.2; fall back to the carried transformers 5.24 only if the image's fails with it.
if ! python3 -c "from trl import SFTTrainer, SFTConfig" 2>"$OUT/trl_import.err"; then
  echo "trl import failed with the image's transformers; installing the carried transformers"; cat "$OUT/trl_import.err"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/tf/*.whl || exit 1
fi
python3 - <<'EOF' | tee "$OUT/versions.txt"
import torch, transformers, peft, trl, bitsandbytes, datasets, accelerate
print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__, "| peft", peft.__version__,
      "| trl", trl.__version__, "| bitsandbytes", bitsandbytes.__version__, "| accelerate", accelerate.__version__,
      "| datasets", datasets.__version__, "| gpus", torch.cuda.device_count(), torch.cuda.get_device_name(0))
try:
    from torch.nn.attention.varlen import varlen_attn
    import inspect; print("varlen_attn", inspect.signature(varlen_attn))
except Exception as e:
    print("no varlen_attn:", e)
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/versions.txt"
if [ "$what" = tests ] || [ "$what" = all ] || [ "$what" = tests+eval ]; then
  timeout ${TEST_TIMEOUT:-240} python3 -m pytest tests/integration/test_gpu_training.py -q -p no:cacheprovider -rs \
    ${TESTS_K:+-k "$TESTS_K"} 2>&1 \
    | tee "$OUT/gpu_tests.log" | tail -40
fi
if [ "$what" = eval ] || [ "$what" = all ] || [ "$what" = tests+eval ]; then
  timeout ${EVAL_TIMEOUT:-240} python3 benchmarks/eval_bench.py --models random:smollm2 random:1b --samples 32 \
    --batch-size 8 --max-new-tokens 48 --cache-dir /tmp/evalbench --json "$OUT/eval_bench_gpu.json" 2>&1 \
    | grep -v "it/s\]" | tee "$OUT/eval_bench.log" | tail -20
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  python3 benchmarks/train_bench.py "$@" 2>&1 | tee "$OUT/train_bench.log" | grep -v "it/s\]\|examples/s\]\|Warning\|warnings.warn"
fi
