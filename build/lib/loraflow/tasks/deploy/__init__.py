"""Stage 5, deployment: merge LoRA, quantise, export GGUF, model card, the MLflow registry (versions, champion alias)."""
