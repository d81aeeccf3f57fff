#!/bin/bash
# On the GPU machine: install the carried wheels, run the GPU training tests, the evaluation benchmark, then the
# training benchmark. Usage: bash benchmarks/gpu_train_run.sh [setup|tests|eval|bench|all|tests+eval] [train_bench.py args...]
# (results under $OUT; setup only installs the wheels into /tmp/site and prints the versions)
# Several GPUs: `fsdp-tests` (tests/integration/test_gpu_fsdp.py), `fsdp7b` (benchmarks/fsdp_run.py: a 7B-shaped
# QLoRA model through train_model with FSDP on 2 GPUs, resumed, and on 1 GPU), `ddp` (train_bench under torchrun on
# 1 and 2 GPUs), `dpo` (benchmarks/preference_gpu_bench.py), `long-tests` and `long` (long context), joined with +; each stage is bounded by STAGE_TIMEOUT
# seconds and all by DEADLINE seconds from the start (a later stage is skipped when too little is left).
set -u
what=${1:-all}; shift || true
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/train/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
# Preference records are validated by their pandera contract when training reads them: carry .whl/pandera too
# (pandera and its small dependencies, and pandas for an image without it).
if [ -d .whl/pandera ]; then
  python3 -c "import pandas" 2>/dev/null && wheels=$(ls .whl/pandera/*.whl | grep -v /pandas-) || wheels=$(ls .whl/pandera/*.whl)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels || exit 1
fi
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
if [ "$what" = all ] || [[ "+$what+" == *"+tests+"* ]]; then
  timeout ${TEST_TIMEOUT:-240} python3 -m pytest tests/integration/test_gpu_training.py -q -p no:cacheprovider -rs \
    ${TESTS_K:+-k "$TESTS_K"} 2>&1 \
    | tee "$OUT/gpu_tests.log" | tail -40
fi
if [ "$what" = all ] || [[ "+$what+" == *"+eval+"* ]]; then
  timeout ${EVAL_TIMEOUT:-240} python3 benchmarks/eval_bench.py --models random:smollm2 random:1b --samples 32 \
    --batch-size 8 --max-new-tokens 48 --cache-dir /tmp/evalbench --json "$OUT/eval_bench_gpu.json" 2>&1 \
    | grep -v "it/s\]" | tee "$OUT/eval_bench.log" | tail -20
fi
if [ "$what" = bench ] || [ "$what" = all ] || [[ "+$what+" == *"+bench+"* ]]; then
  python3 benchmarks/train_bench.py "$@" 2>&1 | tee "$OUT/train_bench.log" | grep -v "it/s\]\|examples/s\]\|Warning\|warnings.warn"
fi
stage() {  # stage NAME COMMAND...: bounded by STAGE_TIMEOUT and by DEADLINE (seconds since start); output in $OUT/NAME.log
  local name=$1; shift
  local left=$(( ${DEADLINE:-100000} - SECONDS - 10 ))
  local limit=$(( left < ${STAGE_TIMEOUT:-300} ? left : ${STAGE_TIMEOUT:-300} ))
  if [ $limit -lt 20 ]; then echo "== $name skipped: ${left}s left"; return; fi
  echo "== $name $(date -u +%H:%M:%S) (limit ${limit}s)"
  timeout $limit "$@" > "$OUT/$name.log" 2>&1; echo "== $name exit $? $(date -u +%H:%M:%S)"
  grep -v "it/s\]\|examples/s\]\|Warning\|warnings.warn" "$OUT/$name.log" | tail -${TAIL:-12}
}
has() { [[ "+$what+" == *"+$1+"* ]]; }  # stages joined with +: fsdp-tests+fsdp7b+ddp
if has fsdp-tests; then
  stage fsdp_tests python3 -m pytest tests/integration/test_gpu_fsdp.py -q -p no:cacheprovider -rs
fi
if has ddp; then
  for n in ${DDP_N:-1 2}; do  # DDP_ENV: extra environment (e.g. OMP_NUM_THREADS=8), DDP_ARGS: more train_bench args
    stage ddp$n${DDP_TAG:-} env ${DDP_ENV:-} python3 -m torch.distributed.run --standalone --nproc_per_node $n \
      benchmarks/train_bench.py --skip-baseline --variants loraflow --settings ${DDP_SETTINGS:-1024x8,2048x2} --peak= \
      --ragged= --json "$OUT/ddp$n${DDP_TAG:-}.json" ${DDP_ARGS:-}
  done
fi
if has long-tests; then  # long context (issue 27 item 3): offloaded checkpointing at 32k tokens on a small model
  stage long_tests python3 -m pytest tests/integration/test_gpu_long_context.py -q -p no:cacheprovider -rs -s
fi
if has long; then  # the longest batch-1 sequence, measured and predicted; LONG_ARGS: long_context_bench.py options
  stage long_context python3 benchmarks/long_context_bench.py --json "$OUT/long_context_bench.json" ${LONG_ARGS:-}
fi
if has dpo; then
  stage dpo env CUDA_VISIBLE_DEVICES=0 python3 benchmarks/preference_gpu_bench.py --json "$OUT/preference_gpu.json" ${DPO_ARGS:-}
fi
if has fsdp7b; then
  stage fsdp7b_build python3 benchmarks/fsdp_run.py build /tmp/fsdp7b --seq ${FSDP_SEQ:-1024} --records 160
  for run in ${FSDP_RUNS:-fsdp resume}; do
    case $run in
      fsdp) stage fsdp7b_fsdp python3 benchmarks/fsdp_run.py train /tmp/fsdp7b /tmp/fsdp7b/run_fsdp --gpus 2 --steps 8 \
              --save-steps 4 --seq ${FSDP_SEQ:-1024} --batch ${FSDP_BATCH:-8} --json "$OUT/fsdp7b_fsdp.json" ;;
      resume) stage fsdp7b_resume python3 benchmarks/fsdp_run.py train /tmp/fsdp7b /tmp/fsdp7b/run_fsdp --gpus 2 --steps 12 \
              --save-steps 4 --seq ${FSDP_SEQ:-1024} --batch ${FSDP_BATCH:-8} --json "$OUT/fsdp7b_resume.json" ;;
      single) stage fsdp7b_single env CUDA_VISIBLE_DEVICES=0 python3 benchmarks/fsdp_run.py train /tmp/fsdp7b /tmp/fsdp7b/run_one \
              --gpus 1 --steps 4 --save-steps 1000 --seq ${FSDP_SEQ:-1024} --batch ${FSDP_BATCH:-8} --json "$OUT/fsdp7b_single.json" ;;
    esac
  done
fi
