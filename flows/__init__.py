"""Prefect flows: only the order of task calls."""
