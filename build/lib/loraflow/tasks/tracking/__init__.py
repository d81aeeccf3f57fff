"""MLflow tracking for every stage: the run per pipeline run, extras logged by later steps, links to what people look at."""
