"""Offline RL for an online shop: simulator, transition data, training, OPE, gate and export.

This package is the pure library. It never imports dagster; the orchestration layer
(``orchestration/`` and ``assets/``) wraps it.
"""

__version__ = "0.1.0"
