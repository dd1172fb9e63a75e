"""Dagster code location of the offline RL pipeline (``orchestration.definitions``)."""
