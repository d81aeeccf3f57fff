"""Stage 3, training: LoRA / QLoRA / full and preference tuning through trl, multi-GPU launch, resume, diagnosis, sweeps."""
