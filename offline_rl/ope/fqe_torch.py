"""Fitted Q evaluation (FQE) of a possibly stochastic target policy on logged transitions.

A small torch MLP ``Q(s, .)`` (one output per action) is regressed on the Bellman targets of
the target policy ``pi`` (Le, Voloshin and Yue 2019)::

    y_t = r_t + gamma * (1 - done_t) * sum_a' pi(a'|s_{t+1}) Q_target(s_{t+1}, a')

where ``s_{t+1}`` is the next logged step of the same episode and ``done_t`` is true at an
episode's last logged step (terminal or end of the log: nothing to bootstrap from). The
target network is a frozen copy refreshed ``n_iterations`` times over the run, so the fit is a
sequence of ``n_iterations`` regressions, each warm-started from the previous one (fitted Q
iteration); ``n_iterations`` defaults to the longest episode plus two: a finite-horizon problem of
length ``H`` needs ``H`` backups to propagate rewards from the last step to the first.

Loss is the mean squared error (the conditional mean is what the direct method and doubly
robust estimators need; a Huber loss would estimate something between mean and median).
Rewards are multiplied by ``1 / p99(|r|)`` inside the fit so the network sees targets of order
one and Q-values are divided by the same factor afterwards; a linear scaling leaves the MSE
minimiser unbiased. Features are standardised. Everything runs on CPU with a seeded torch
generator and numpy generator, so results are deterministic for a seed.

The network trains in single precision (``DTYPE``): on a CPU a step costs about a third of
what double precision does, and float32 rounding (relative 1e-7 on targets of order one) is
far below the sampling noise of any estimate built on the fit. Initial weights are drawn in
double precision and rounded, so a seed starts every precision from the same network.

**Ensembles.** :func:`fit_fqe_ensemble` fits several FQE models at once, each drawing its
mini-batches from its own weighting of the rows: with the counts of bootstrap resamples of
the episodes, member ``k`` is the FQE refit on resample ``k``, which is what a bootstrap of
the direct method needs (resampling episodes around one fitted model ignores the model's
own estimation error). The members' weights are stacked into one batched network, so ``K``
members cost far less than ``K`` separate fits on a CPU. :func:`fit_fqe_policies` goes one
step further for several target policies on the same rows (a night's candidates and its
incumbent): their ensembles train side by side in one network, each policy's members exactly
those it gets alone, since the start and the mini-batches depend on the seed and the rows'
weights only.

Caveat: FQE is only as good as the features are a Markov state. When part of the state is
latent (e.g. a user's taste that clicks only hint at), ``Q(s, a)`` learned under the
behaviour policy's distribution of latent states is biased for a target that reaches the same
features with a different history; on the recommendation simulator the direct method
over-estimates targets far from the logging policy by 10-20% while doubly robust and the
per-decision IS estimators stay closer.

References:
    Le, H., Voloshin, C. and Yue, Y. (2019). Batch policy learning under constraints. *ICML*.
    Voloshin, C., Le, H. M., Jiang, N. and Yue, Y. (2021). Empirical study of off-policy
    policy evaluation for reinforcement learning. *NeurIPS Datasets and Benchmarks*.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

DTYPE = torch.float32
"""Precision of the FQE network, its inputs and targets (results are returned as float64)."""
NP_DTYPE = np.float32
"""``DTYPE`` for the numpy arrays converted to tensors."""
FINAL_PASS_ROWS = 16_384
"""Rows per chunk of the fitted networks' final pass over every row (bounds its memory to
about ``members * FINAL_PASS_ROWS * width`` floats per layer, whatever the data's size)."""


@dataclass(frozen=True)
class FQESettings:
    """Hyper-parameters of :func:`fit_fqe`.

    Attributes:
        steps: Gradient steps in total.
        batch_size: Mini-batch size (capped at the number of rows).
        learning_rate: Adam learning rate (cosine-decayed to 10% within each iteration).
        hidden_units: Hidden layer widths of the MLP.
        n_iterations: Target-network refreshes; ``None`` picks ``clip(horizon + 2, 1, 40)``.
        seed: Seed of initialisation and mini-batch sampling.
        device: torch device of the fit (``"cpu"``, ``"cuda"`` or ``"cuda:N"``); the mini-batch
            draws and the initial weights are the same on every device.
    """

    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 1e-3
    hidden_units: tuple[int, ...] = (64, 64)
    n_iterations: int | None = None
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class FQEResult:
    """The fitted Q-function evaluated at the logged states.

    Attributes:
        q_all: ``[rows, n_actions]`` ``Q_hat(s_t, a)`` in reward units.
        reward_scale: Factor the rewards were multiplied by during the fit.
        n_iterations: Target-network refreshes used.
        final_loss: Mean squared Bellman residual (scaled units) over all rows at the end.
    """

    q_all: np.ndarray
    reward_scale: float
    n_iterations: int
    final_loss: float

    def q_logged(self, action: np.ndarray) -> np.ndarray:
        """``Q_hat(s_t, a_t)`` at the logged actions."""
        return self.q_all[np.arange(self.q_all.shape[0]), action]

    def v_target(self, target_probs: np.ndarray) -> np.ndarray:
        """``V_hat(s_t) = sum_a pi(a|s_t) Q_hat(s_t, a)``."""
        return (target_probs * self.q_all).sum(axis=1)


def reward_scale_for(reward: np.ndarray) -> float:
    """``1 / p99(|r|)`` over non-zero rewards (1.0 when every reward is zero)."""
    nonzero = np.abs(reward[reward != 0])
    if nonzero.size == 0:
        return 1.0
    return float(1.0 / max(np.quantile(nonzero, 0.99), 1e-12))


@contextmanager
def single_thread() -> Iterator[None]:
    """Runs torch on one CPU thread: small networks are fastest (and reproducible) that way,
    and several threads on a busy machine can be tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Ensemble(torch.nn.Module):
    """``K`` independent MLPs evaluated together: ``[K, B, d]`` -> ``[K, B, n_out]``.

    Weights are stacked per layer (``[K, in, out]``) so one batched matrix product runs every
    member; members share nothing, so each gets the gradient of its own loss only. Every
    layer starts like ``torch.nn.Linear`` (uniform in ``+-1/sqrt(fan_in)``).
    """

    def __init__(self, members: int, n_in: int, n_out: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        widths = [n_in, *hidden, n_out]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            bound = 1.0 / np.sqrt(fan_in)
            w = torch.empty(members, fan_in, fan_out, dtype=torch.float64).uniform_(-bound, bound)
            b = torch.empty(members, 1, fan_out, dtype=torch.float64).uniform_(-bound, bound)
            self.weights.append(torch.nn.Parameter(w.to(DTYPE)))
            self.biases.append(torch.nn.Parameter(b.to(DTYPE)))

    def tiled(self, copies: int) -> _Ensemble:
        """This ensemble's members repeated ``copies`` times (``copies * K`` members, copy
        ``c``'s member ``k`` equal to member ``k``)."""
        if copies == 1:
            return self
        out = copy.deepcopy(self)
        for params in (out.weights, out.biases):
            for j, w in enumerate(params):
                params[j] = torch.nn.Parameter(w.detach().repeat(copies, 1, 1))
        return out

    def members(self, which: slice) -> _Ensemble:
        """The members ``which`` as an ensemble of their own (a copy)."""
        out = copy.deepcopy(self)
        for params in (out.weights, out.biases):
            for j, w in enumerate(params):
                params[j] = torch.nn.Parameter(w.detach()[which].clone())
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if k < last:
                x = torch.relu(x)
        return x


@dataclass(frozen=True)
class FQEEnsembleResult:
    """Several FQE fits of one target policy, each on its own weighting of the rows.

    Attributes:
        q_all: ``[members, rows, n_actions]`` ``Q_hat_k(s_t, a)`` in reward units.
        reward_scale: Factor the rewards were multiplied by during the fits.
        n_iterations: Target-network refreshes used.
        final_loss: ``[members]`` mean squared Bellman residual (scaled units) of each member
            over the rows it was fitted on (weighted like its sampling).
    """

    q_all: np.ndarray
    reward_scale: float
    n_iterations: int
    final_loss: np.ndarray

    def member(self, k: int) -> FQEResult:
        """Member ``k`` as a single :class:`FQEResult`."""
        return FQEResult(q_all=self.q_all[k], reward_scale=self.reward_scale,
                         n_iterations=self.n_iterations, final_loss=float(self.final_loss[k]))


def fit_fqe(
    features: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_index: np.ndarray,
    target_probs: np.ndarray,
    *,
    gamma: float = 1.0,
    horizon: int | None = None,
    settings: FQESettings | None = None,
) -> FQEResult:
    """Fits ``Q_hat`` of the target policy by FQE.

    Args:
        features: ``[rows, d]`` state features of the logged decisions.
        action: Logged action per row.
        reward: Reward per row.
        next_index: Row of the next logged step of the same episode, ``-1`` when there is none
            (terminal or end of the logged episode).
        target_probs: ``[rows, n_actions]`` ``pi(a|s_t)`` at every logged state (one-hot for a
            deterministic policy).
        gamma: Discount factor.
        horizon: Longest episode length (picks ``n_iterations``); ``None`` assumes 10.
        settings: Hyper-parameters.

    Returns:
        :class:`FQEResult`.
    """
    rows = np.asarray(action).shape[0]
    return fit_fqe_ensemble(features, action, reward, next_index, target_probs,
                            np.ones((1, rows)), gamma=gamma, horizon=horizon,
                            settings=settings).member(0)


def fit_fqe_ensemble(
    features: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_index: np.ndarray,
    target_probs: np.ndarray,
    row_weights: np.ndarray,
    *,
    gamma: float = 1.0,
    horizon: int | None = None,
    settings: FQESettings | None = None,
) -> FQEEnsembleResult:
    """Fits one FQE per row of ``row_weights``, all in one batched network.

    Member ``k`` draws its mini-batches from the rows with probability proportional to
    ``row_weights[k]``: all ones is the plain fit of :func:`fit_fqe`; the multinomial counts of
    a bootstrap resample of episodes (repeated onto each episode's rows) make the member the
    FQE fit on that resample, which is what a bootstrap of the direct method has to refit.
    Members share the feature standardisation, the reward scale and the schedule, and
    nothing else (own initialisation, own mini-batches).

    Args:
        features, action, reward, next_index, target_probs, gamma, horizon: As
            :func:`fit_fqe`.
        row_weights: ``[members, rows]`` nonnegative sampling weights; each row of it needs a
            positive sum.
        settings: Hyper-parameters (the same for every member).

    Returns:
        :class:`FQEEnsembleResult`.

    Raises:
        ValueError: When ``row_weights`` has the wrong shape, negative or non-finite entries, or
            a member without any positive weight.
    """
    return fit_fqe_policies(features, action, reward, next_index, [target_probs], row_weights,
                            gamma=gamma, horizon=horizon, settings=settings).result(0)


def fit_fqe_policies(
    features: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_index: np.ndarray,
    target_probs: list[np.ndarray],
    row_weights: np.ndarray,
    *,
    gamma: float = 1.0,
    horizon: int | None = None,
    settings: FQESettings | None = None,
) -> FQEPolicies:
    """:func:`fit_fqe_ensemble` of several target policies on the same logged rows, trained
    together in one batched network of ``policies * members`` members.

    Policy ``p``'s members are exactly those :func:`fit_fqe_ensemble` fits for
    ``target_probs[p]`` alone: they start from the same weights and draw the same mini-batches
    (both depend on the seed and ``row_weights`` only, never on the target), and no member's
    gradient involves another's loss, so only the Bellman targets differ between policies.
    On a CPU, ``P`` policies together take about 60% of the time of ``P`` separate fits (one
    batched product per layer instead of ``P``).

    Args:
        target_probs: One ``[rows, n_actions]`` distribution per policy (same shape for all).
        Others: As :func:`fit_fqe_ensemble`.

    Returns:
        :class:`FQEPolicies`, whose :meth:`FQEPolicies.result` gives each policy's
        :class:`FQEEnsembleResult` (the final pass over every row runs there, one policy at a
        time, so its memory is that of a single policy's fit).

    Raises:
        ValueError: As :func:`fit_fqe_ensemble`, and when ``target_probs`` is empty or its
            distributions differ in shape.
    """
    weights = np.asarray(row_weights, dtype=np.float64)
    rows = np.asarray(action).shape[0]
    if weights.ndim != 2 or weights.shape[1] != rows:
        raise ValueError(f"row_weights: expected shape (members, {rows}), got {weights.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("row_weights: entries must be finite and nonnegative")
    empty = weights.sum(axis=1) <= 0
    if empty.any():
        raise ValueError(f"row_weights: member {int(np.flatnonzero(empty)[0])} has no positive "
                         "weight")
    if not target_probs:
        raise ValueError("target_probs: expected at least one policy's probabilities")
    shapes = {np.shape(p) for p in target_probs}
    if len(shapes) != 1:
        raise ValueError(f"target_probs: every policy needs the same [rows, n_actions] shape, "
                         f"got {sorted(shapes)}")
    with single_thread():
        return _fit(features, action, reward, next_index, target_probs, weights, gamma,
                    horizon, settings or FQESettings())


@dataclass(frozen=True)
class _Rows:
    """The logged rows as tensors, standardised and scaled as every member sees them."""

    x: torch.Tensor
    reward: torch.Tensor
    action: torch.Tensor
    nxt: torch.Tensor
    cont: torch.Tensor
    pi: torch.Tensor
    """``[policies, rows, n_actions]`` target probabilities."""
    scale: float


def _bellman_targets(frozen: torch.nn.Module, data: _Rows, idx: torch.Tensor,
                     policies: slice) -> torch.Tensor:
    """``[P * K, B]`` Bellman targets of rows ``idx`` (``[K, B]``, the same for each policy)
    under each member of ``frozen`` (the members of ``policies``, ``K`` each)."""
    with torch.no_grad():
        nidx = data.nxt[idx]
        q_next = frozen(_tiled(data.x[nidx], data.pi[policies].shape[0]))
        return _targets_from(q_next, data, idx, policies)


def _targets_from(q_next: torch.Tensor, data: _Rows, idx: torch.Tensor, policies: slice
                  ) -> torch.Tensor:
    """:func:`_bellman_targets` given the members' values ``q_next`` (``[P * K, B,
    n_actions]``) of the next rows of ``idx``."""
    nidx = data.nxt[idx]
    pi = data.pi[policies]
    q_next = q_next.view(pi.shape[0], *nidx.shape, q_next.shape[-1])
    v_next = (pi[:, nidx] * q_next).sum(dim=3)
    return (data.reward[idx] + data.cont[idx] * v_next).flatten(0, 1)


def _tiled(values: torch.Tensor, policies: int) -> torch.Tensor:
    """``[K, ...]`` repeated for each policy: ``[policies * K, ...]``."""
    if policies == 1:
        return values
    return values.unsqueeze(0).expand(policies, *values.shape).flatten(0, 1)


class FQEPolicies:
    """The fitted batched network of :func:`fit_fqe_policies`."""

    def __init__(self, net: _Ensemble, data: _Rows, row_weights: np.ndarray,
                 n_iterations: int, standardise: tuple[np.ndarray, np.ndarray]) -> None:
        self._net, self._data, self._weights = net, data, row_weights
        self._mean, self._std = standardise
        self.n_iterations = n_iterations
        self.policies = data.pi.shape[0]

    def q_function(self, p: int, member: int = 0) -> Callable[[np.ndarray], np.ndarray]:
        """Member ``member`` of policy ``p`` as a function of any observations: ``[n,
        features]`` -> ``[n, n_actions]`` ``Q_hat(s, a)`` in reward units (the features
        standardised as in the fit). On the logged rows it gives ``result(p).q_all[member]``
        (to float32's rounding: there the member ran beside the others)."""
        if not 0 <= p < self.policies:
            raise IndexError(f"policy {p} of {self.policies}")
        members = self._weights.shape[0]
        if not 0 <= member < members:
            raise IndexError(f"member {member} of {members}")
        at = p * members + member
        net = self._net.members(slice(at, at + 1))
        mean, std, scale = self._mean, self._std, self._data.scale
        n_actions = self._data.pi.shape[2]
        dev = self._data.x.device

        def q(observations: np.ndarray) -> np.ndarray:
            x = (np.asarray(observations, dtype=np.float64) - mean) / std
            out = np.empty((x.shape[0], n_actions))
            with single_thread(), torch.no_grad():
                for lo in range(0, x.shape[0], FINAL_PASS_ROWS):
                    part = torch.from_numpy(x[lo:lo + FINAL_PASS_ROWS].astype(NP_DTYPE))
                    out[lo:lo + part.shape[0]] = net(part.to(dev)[None])[0].double().cpu() \
                        .numpy() / scale
            return out

        return q

    def result(self, p: int) -> FQEEnsembleResult:
        """Policy ``p``'s members: every member's values of every row (``FINAL_PASS_ROWS``
        rows at a time: the network's activations of all rows at once would take
        ``members * rows * width`` floats per layer)."""
        if not 0 <= p < self.policies:
            raise IndexError(f"policy {p} of {self.policies}")
        data, members = self._data, self._weights.shape[0]
        net = self._net.members(slice(p * members, (p + 1) * members))
        rows, n_actions = data.pi.shape[1:]
        q_all = np.empty((members, rows, n_actions))
        dev = data.x.device
        with single_thread(), torch.no_grad():
            # the values of every row first (float32 as well as the float64 returned); each
            # row's Bellman target then reads its next row's values from them instead of a
            # second pass over the next rows. The targets feed only ``final_loss``, which
            # can differ from a second pass's in float32's last bits (about 1e-9 relative):
            # a row's values may depend on the rows it is passed with by that much
            q_raw = torch.empty((members, rows, n_actions), dtype=DTYPE, device=dev)
            for lo in range(0, rows, FINAL_PASS_ROWS):
                hi = min(rows, lo + FINAL_PASS_ROWS)
                q_raw[:, lo:hi] = net(data.x[lo:hi].expand(members, hi - lo, data.x.shape[1]))
                q_all[:, lo:hi] = q_raw[:, lo:hi].double().cpu().numpy() / data.scale
            residual = torch.empty((members, rows), dtype=DTYPE, device=dev)
            for lo in range(0, rows, FINAL_PASS_ROWS):
                hi = min(rows, lo + FINAL_PASS_ROWS)
                part = torch.arange(lo, hi, device=dev).expand(members, hi - lo)
                q_next = q_raw.gather(1, data.nxt[part][:, :, None].expand(-1, -1, n_actions))
                y = _targets_from(q_next, data, part, slice(p, p + 1))
                residual[:, lo:hi] = (q_raw[:, lo:hi].gather(
                    2, data.action[lo:hi].expand(members, hi - lo)[:, :, None]).squeeze(2)
                    - y) ** 2
            w = torch.from_numpy(self._weights).to(data.x.device)
            final_loss = ((residual.double() * w).sum(dim=1) / w.sum(dim=1)).cpu().numpy()
        return FQEEnsembleResult(q_all=q_all, reward_scale=data.scale,
                                 n_iterations=self.n_iterations, final_loss=final_loss)


def _fit(features: np.ndarray, action: np.ndarray, reward: np.ndarray, next_index: np.ndarray,
         target_probs: list[np.ndarray], row_weights: np.ndarray, gamma: float,
         horizon: int | None, cfg: FQESettings) -> FQEPolicies:
    x = np.asarray(features, dtype=np.float64)
    policies = len(target_probs)
    rows, n_actions = np.shape(target_probs[0])
    members = row_weights.shape[0]
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    dev = torch.device(cfg.device)

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(values).to(dev)

    has_next = next_index >= 0
    scale = reward_scale_for(reward)
    pi = torch.empty((policies, rows, n_actions), dtype=DTYPE, device=dev)
    for p, probs in enumerate(target_probs):
        pi[p] = tensor(np.asarray(probs, dtype=NP_DTYPE))
    data = _Rows(x=tensor(((x - mean) / std).astype(NP_DTYPE)),
                 reward=tensor((np.asarray(reward, dtype=np.float64) * scale).astype(NP_DTYPE)),
                 action=tensor(np.asarray(action, dtype=np.int64)),
                 nxt=tensor(np.where(has_next, next_index, 0).astype(np.int64)),
                 cont=tensor((has_next * float(gamma)).astype(NP_DTYPE)), pi=pi, scale=scale)
    if horizon is None:
        horizon = 10
    if not has_next.any() or gamma == 0:
        n_iter = 1  # a plain regression on rewards: no bootstrapping needed
    else:
        n_iter = cfg.n_iterations or int(np.clip(horizon + 2, 1, 40))
    n_iter = max(1, min(n_iter, cfg.steps))
    steps_per_iter = max(1, cfg.steps // n_iter)
    batch = min(cfg.batch_size, rows)
    rng = np.random.default_rng(cfg.seed)
    cdf = np.cumsum(row_weights, axis=1)
    cdf /= cdf[:, -1:]

    # every policy's members start from the members one policy's fit would draw
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = _Ensemble(members, x.shape[1], n_actions, cfg.hidden_units).tiled(policies)
    net = net.to(dev)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    everyone = slice(0, policies)

    for _ in range(n_iter):
        frozen = copy.deepcopy(net).eval()
        # the iteration's mini-batches at once: the same draws, in the same order, as one
        # ``[members, batch]`` draw per step
        draws = rng.random((steps_per_iter, members, batch)).transpose(1, 0, 2)
        rows_drawn = _searchsorted_rows(cdf, draws.reshape(members, -1)).reshape(draws.shape)
        for k in range(steps_per_iter):
            lr = cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * k / steps_per_iter)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = tensor(np.ascontiguousarray(rows_drawn[:, k]))
            y = _bellman_targets(frozen, data, idx, everyone)
            q = net(_tiled(data.x[idx], policies)).gather(
                2, _tiled(data.action[idx], policies)[:, :, None]).squeeze(2)
            loss = torch.mean((q - y) ** 2, dim=1).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return FQEPolicies(net, data, row_weights, n_iter, (mean, std))


def _searchsorted_rows(cdf: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Row-wise inverse CDF: for each member ``k``, ``searchsorted(cdf[k], draws[k])``."""
    members, rows = cdf.shape
    offset = np.arange(members, dtype=np.float64)[:, None]
    flat = (cdf + offset).ravel()
    pos = np.searchsorted(flat, (draws + offset).ravel(), side="right").reshape(draws.shape)
    return np.minimum(pos - np.arange(members)[:, None] * rows, rows - 1)
