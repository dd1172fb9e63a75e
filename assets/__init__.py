"""Dagster assets: thin wrappers that read through resources, call offline_rl, and report."""
