"""Vectorised episode bootstrap for estimators that are functions of per-episode sums.

Every estimator in :mod:`offline_rl.ope.estimators` is a smooth function of column sums
``S = c @ M`` of a per-episode statistics matrix ``M`` (``n`` episodes by ``K`` statistics)
with ``c`` the vector of how often each episode is used (all ones for the point estimate).
A nonparametric bootstrap that resamples whole episodes with replacement draws ``c`` from
``Multinomial(n, (1/n, ..., 1/n))``; ``B`` resamples stack into a ``[B, n]`` count matrix
``C`` and all resampled sums come from one matrix product ``C @ M``. Ratios of sums (the
self-normalised estimators) are therefore recomputed inside every resample, which is what a
correct bootstrap of a ratio estimator needs.

References:
    Efron, B. and Tibshirani, R. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

MAX_CHUNK_BYTES = 200_000_000
"""Approximate memory bound of one chunk of resample counts (index draws plus counts)."""

_BYTES_PER_CELL = 28
"""Bytes per (resample, episode) cell: int32 draw, its intp copy, int64 and float64 counts."""


def resample_counts(
    n: int, n_bootstrap: int, rng: np.random.Generator, *, max_bytes: int = MAX_CHUNK_BYTES
) -> Iterator[np.ndarray]:
    """Yields multinomial resample-count matrices in chunks of rows.

    Each row is how many times each of ``n`` units is drawn in one bootstrap resample of size
    ``n`` with replacement, i.e. a draw from ``Multinomial(n, 1/n * ones(n))``. Rows are
    produced by drawing uniform indices and counting them with one ``np.bincount`` per chunk
    (no Python loop per resample).

    Args:
        n: Number of units (episodes) resampled.
        n_bootstrap: Total number of resamples (rows) to yield.
        rng: Source of randomness; the sequence of chunks is a deterministic function of its
            state, ``n`` and ``max_bytes``.
        max_bytes: Approximate memory bound of one chunk.

    Yields:
        ``float64`` arrays of shape ``[b, n]`` whose rows sum to ``n``; the ``b`` add up to
        ``n_bootstrap``.
    """
    if n < 1:
        raise ValueError(f"n: need at least one unit to resample, got {n}")
    chunk = max(1, int(max_bytes) // (_BYTES_PER_CELL * n))
    dtype: type[np.signedinteger[Any]] = (
        np.int32 if chunk * n < np.iinfo(np.int32).max else np.int64)
    done = 0
    while done < n_bootstrap:
        b = min(chunk, n_bootstrap - done)
        idx = rng.integers(0, n, size=(b, n), dtype=dtype)
        idx += (np.arange(b, dtype=dtype) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        del idx
        yield counts.astype(np.float64)
        done += b


def bootstrap_sums(
    stats: np.ndarray,
    statistic: Callable[[np.ndarray, float], np.ndarray],
    n_bootstrap: int,
    seed: int | np.random.Generator,
    *,
    max_bytes: int = MAX_CHUNK_BYTES,
) -> np.ndarray:
    """Bootstrap replicates of statistics that are functions of per-unit column sums.

    Args:
        stats: ``[n, K]`` per-unit (per-episode) statistics ``M``.
        statistic: Maps a ``[b, K]`` array of resampled column sums and the resample size
            ``n`` to a ``[b, m]`` array of ``m`` estimates (one row per resample).
        n_bootstrap: Number of resamples ``B``.
        seed: Seed or generator of the resampling.
        max_bytes: Approximate memory bound of one chunk of resamples.

    Returns:
        ``[B, m]`` array of bootstrap replicates.
    """
    stats = np.asarray(stats, dtype=np.float64)
    n = stats.shape[0]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out = [
        np.asarray(statistic(counts @ stats, float(n)))
        for counts in resample_counts(n, n_bootstrap, rng, max_bytes=max_bytes)
    ]
    if not out:
        m = np.asarray(statistic(stats.sum(axis=0, keepdims=True), float(n))).shape[1]
        return np.empty((0, m))
    return np.concatenate(out, axis=0)


def percentile_interval(
    replicates: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval and standard error from bootstrap replicates.

    The interval of level ``1 - alpha`` is ``[q_{alpha/2}, q_{1-alpha/2}]`` of the replicates
    (Efron's percentile method); the standard error is their standard deviation (``ddof=1``).
    Replicates that are NaN (a self-normalised estimator whose resample has zero total weight)
    are ignored; a column without finite replicates gives NaN.

    Args:
        replicates: ``[B, m]`` bootstrap replicates.
        alpha: Two-sided miscoverage, in ``(0, 1)``.

    Returns:
        ``(low, high, stderr)``, each of shape ``[m]``.
    """
    replicates = np.asarray(replicates, dtype=np.float64)
    m = replicates.shape[1]
    if replicates.shape[0] < 2:
        nan = np.full(m, np.nan)
        return nan, nan.copy(), nan.copy()
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if np.isnan(replicates).any():
            low, high = np.nanquantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)
            stderr = np.nanstd(replicates, axis=0, ddof=1)
        else:
            low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)
            stderr = np.std(replicates, axis=0, ddof=1)
    return low, high, stderr
