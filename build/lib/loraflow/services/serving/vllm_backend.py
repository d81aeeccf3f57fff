"""The vLLM backend: build the `vllm serve` command line from ServeConfig and run it where vLLM is installed."""
import importlib.util
import os
import subprocess

from loraflow.schemas.config.serve import ServeConfig


def vllm_available() -> bool:
    """True where `import vllm` would work (never on the CPU build machines)."""
    return importlib.util.find_spec("vllm") is not None


def build_vllm_command(model_path: str, config: ServeConfig, served_model_name: str,
                       lora_paths: dict[str, str] | None = None) -> list[str]:
    """The `vllm serve` argv for a local model folder; lora_paths overrides config.vllm.lora_modules with local folders."""
    v = config.vllm
    command = [
        "vllm", "serve", model_path,
        "--host", config.host,
        "--port", str(config.port),
        "--served-model-name", served_model_name,
        "--max-num-seqs", str(config.max_batch_size),
        "--tensor-parallel-size", str(v.tensor_parallel_size),
        "--dtype", v.dtype,
        "--gpu-memory-utilization", str(v.gpu_memory_utilization),
    ]
    if v.max_model_len is not None:
        command += ["--max-model-len", str(v.max_model_len)]
    if v.quantization is not None:
        command += ["--quantization", v.quantization]
    if v.enable_lora:
        command += ["--enable-lora", "--max-loras", str(v.max_loras), "--max-lora-rank", str(v.max_lora_rank)]
        modules = lora_paths if lora_paths is not None else v.lora_modules
        if modules:
            command += ["--lora-modules", *(f"{name}={path}" for name, path in modules.items())]
    return command + list(v.extra_args)


def vllm_environment(config: ServeConfig) -> dict[str, str]:
    """Environment for the vLLM process: runtime adapter loading on when multi-LoRA is on."""
    env = dict(os.environ)
    if config.vllm.enable_lora:
        # Lets a promotion add a new adapter through /v1/load_lora_adapter without restarting the server.
        env.setdefault("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")
    return env


def run_vllm(config: ServeConfig, model_uri: str) -> int:
    """Resolve the model (and adapters) to local folders and run `vllm serve` in the foreground."""
    from loraflow.services.serving.source import resolve_model_uri, served_model_name

    lora_paths = {name: resolve_model_uri(uri) for name, uri in config.vllm.lora_modules.items()}
    command = build_vllm_command(resolve_model_uri(model_uri), config, config.served_model_name or served_model_name(model_uri), lora_paths)
    return subprocess.call(command, env=vllm_environment(config))
