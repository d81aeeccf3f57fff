"""peft's adapter config for LoRA training: every layer's linear modules, or only the last N decoder layers'."""
from loraflow.schemas.config.lora import LoraConfig
from loraflow.tasks.common.errors import LoraflowError


def lora_target_modules(model, lora: LoraConfig) -> list[str] | str:
    """peft's target_modules: as configured, or the decoder layers' linear module names when only the last layers are adapted."""
    if not lora.last_layers or not isinstance(lora.target_modules, str):
        return lora.target_modules
    import torch

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and ".layers." in name}
    if not names:
        raise LoraflowError("lora.last_layers needs a model whose decoder layers are named `layers.<i>` (Llama, Qwen, Mistral, ...); "
                            "unset lora.last_layers for this model.")
    return sorted(names)


def last_layer_indices(model, count: int) -> list[int]:
    """The indices of the model's last `count` decoder layers."""
    total = model.config.num_hidden_layers
    return list(range(max(0, total - count), total))


def peft_lora_config(model, lora: LoraConfig):
    """peft's LoraConfig for causal-LM training from ours, on every layer or only the last lora.last_layers."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora_target_modules(model, lora),
        layers_to_transform=last_layer_indices(model, lora.last_layers) if lora.last_layers else None,
        task_type="CAUSAL_LM",
    )
