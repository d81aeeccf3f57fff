"""Stage 4, evaluation: generation, task metrics per field against baselines, comparison, badcases, human and judge ratings, the promotion gate, reports."""
