"""Plain typed functions that do the pipeline's work (no prefect here; wrappers live in tasks/steps.py)."""
