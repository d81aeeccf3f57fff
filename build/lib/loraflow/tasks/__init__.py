"""The pipeline's work, one package per DAG stage (plain typed functions, no prefect); `steps/` holds the thin
Prefect `@task` wrappers, one module per stage."""
