"""Action masks inside d3rlpy's discrete algorithms: training targets and greedy actions.

A masked domain carries its mask in the observation: one 0/1 feature per action, the action
being allowed where its feature is > 0 (``Domain.mask_indices`` gives their positions). d3rlpy
2.8 knows nothing of masks, so ``apply_action_mask`` switches a built algorithm's
implementation to a subclass of the same d3rlpy class that reads the mask from the observation
wherever an action is *chosen*:

=============  ==============================================================================
algorithm      what the mask changes
=============  ==============================================================================
DQN            the bootstrap target's argmax over the target network's Q (the target value
               itself is the target network's Q of that allowed action); greedy actions
DoubleDQN      the online network's argmax that picks the target's action; greedy actions
DiscreteCQL    as DoubleDQN, and the conservative penalty's log-sum-exp runs over the allowed
               actions only (forbidden actions can never be taken, so they are not pushed down)
DiscreteBCQ    the behaviour model's distribution is restricted to the allowed actions before
               its relative-probability filter, then the best Q among the allowed, likely
               actions is taken (for the target and for greedy actions)
DiscreteBC     greedy actions: the most probable allowed action
=============  ==============================================================================

What is unchanged: the TD error and the imitation loss of the *logged* action (its gradient
path is d3rlpy's), and the values ``predict_value`` and the exported graphs report (masks only
change which action is chosen). A row whose mask allows nothing (the all-zero next observation
d3rlpy uses after a terminal step) is treated as allowing every action, so an action index is
always defined; the export returns -1 for such a row instead.

The mask is not part of the saved model: ``train_candidate`` records ``mask_indices`` in
``training.json`` and ``load_candidate`` applies it again after loading.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCImpl
from d3rlpy.algos.qlearning.torch.bcq_impl import DiscreteBCQImpl
from d3rlpy.algos.qlearning.torch.cql_impl import DiscreteCQLImpl
from d3rlpy.algos.qlearning.torch.dqn_impl import DoubleDQNImpl, DQNImpl
from d3rlpy.torch_utility import TorchMiniBatch

__all__ = [
    "MASK_ATTRIBUTE",
    "allowed_actions",
    "apply_action_mask",
    "mask_indices_of",
    "validate_mask_indices",
]

MASK_ATTRIBUTE = "_action_mask_index"
"""Name of the implementation attribute holding the mask features' positions (long tensor)."""


def allowed_actions(obs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Boolean ``[batch, n_actions]``: the mask features of ``obs`` that are > 0.

    A row that allows no action allows every action (see the module docstring).
    """
    if not isinstance(obs, torch.Tensor) or obs.dim() != 2:
        raise ValueError("action masks need flat vector observations [batch, n_features]")
    allowed = obs.index_select(1, index) > 0
    return allowed | ~allowed.any(dim=1, keepdim=True)


def _masked_argmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return scores.masked_fill(~allowed, float("-inf")).argmax(dim=1)


class _MaskMixin:
    """Shared state of the masked implementations (``_action_mask_index`` is set on apply)."""

    _action_mask_index: torch.Tensor

    def _allowed(self, obs: torch.Tensor) -> torch.Tensor:
        return allowed_actions(obs, self._action_mask_index)


class MaskedDQNImpl(_MaskMixin, DQNImpl):
    """DQN: the target's max and the greedy action run over allowed actions."""

    def compute_target(self, batch: TorchMiniBatch) -> torch.Tensor:
        with torch.no_grad():
            next_q = self._targ_q_func_forwarder.compute_expected_q(batch.next_observations)
            action = _masked_argmax(next_q, self._allowed(batch.next_observations))
            return self._targ_q_func_forwarder.compute_target(
                batch.next_observations, action, reduction="min")

    def inner_predict_best_action(self, x: torch.Tensor) -> torch.Tensor:
        return _masked_argmax(self._q_func_forwarder.compute_expected_q(x), self._allowed(x))


class MaskedDoubleDQNImpl(_MaskMixin, DoubleDQNImpl):
    """DoubleDQN: its target uses ``inner_predict_best_action``, which is masked here."""

    def inner_predict_best_action(self, x: torch.Tensor) -> torch.Tensor:
        return _masked_argmax(self._q_func_forwarder.compute_expected_q(x), self._allowed(x))


class MaskedDiscreteCQLImpl(_MaskMixin, DiscreteCQLImpl):
    """DiscreteCQL: DoubleDQN's masked target, and the penalty over allowed actions."""

    def inner_predict_best_action(self, x: torch.Tensor) -> torch.Tensor:
        return _masked_argmax(self._q_func_forwarder.compute_expected_q(x), self._allowed(x))

    def _compute_conservative_loss(self, obs_t: torch.Tensor,
                                   act_t: torch.Tensor) -> torch.Tensor:
        values = self._q_func_forwarder.compute_expected_q(obs_t)
        allowed_values = values.masked_fill(~self._allowed(obs_t), float("-inf"))
        logsumexp = torch.logsumexp(allowed_values, dim=1, keepdim=True)
        data_values = values.gather(1, act_t.long().view(-1, 1))
        return (logsumexp - data_values).mean()


class MaskedDiscreteBCQImpl(_MaskMixin, DiscreteBCQImpl):
    """DiscreteBCQ: behaviour model restricted to allowed actions, then its filter, then Q."""

    def inner_predict_best_action(self, x: torch.Tensor) -> torch.Tensor:
        allowed = self._allowed(x)
        logits = self._modules.imitator(x).logits.masked_fill(~allowed, float("-inf"))
        log_probs = F.log_softmax(logits, dim=1)
        ratio = log_probs - log_probs.max(dim=1, keepdim=True).values
        likely = (ratio > math.log(self._action_flexibility)) & allowed
        value = self._q_func_forwarder.compute_expected_q(x)
        return _masked_argmax(value, likely)


class MaskedDiscreteBCImpl(_MaskMixin, DiscreteBCImpl):
    """DiscreteBC: the most probable allowed action."""

    def inner_predict_best_action(self, x: torch.Tensor) -> torch.Tensor:
        return _masked_argmax(self._modules.imitator(x).logits, self._allowed(x))


# exact d3rlpy class -> its masked subclass (subclasses of these are not supported: each
# overrides exactly the methods its d3rlpy class uses to choose actions)
_MASKED: dict[type, type] = {
    DQNImpl: MaskedDQNImpl,
    DoubleDQNImpl: MaskedDoubleDQNImpl,
    DiscreteCQLImpl: MaskedDiscreteCQLImpl,
    DiscreteBCQImpl: MaskedDiscreteBCQImpl,
    DiscreteBCImpl: MaskedDiscreteBCImpl,
}


def _base_class(cls: type) -> type | None:
    """The d3rlpy class of an implementation (masked or not) that masks support, else None."""
    if cls in _MASKED:
        return cls
    masked = {v: k for k, v in _MASKED.items()}
    return masked.get(cls)


def validate_mask_indices(mask_indices: Sequence[int], n_features: int,
                          n_actions: int) -> list[int]:
    """``mask_indices`` as a list of ints; ``ValueError`` unless one valid feature per action."""
    indices = [int(i) for i in mask_indices]
    if len(indices) != n_actions:
        raise ValueError(f"action mask needs one feature per action ({n_actions}), "
                         f"got {len(indices)} indices")
    bad = [i for i in indices if not 0 <= i < n_features]
    if bad:
        raise ValueError(f"action mask indices {bad} are outside the {n_features} observation "
                         "features")
    if len(set(indices)) != len(indices):
        raise ValueError(f"action mask indices {indices} repeat a feature")
    return indices


def apply_action_mask(algo: Any, mask_indices: Sequence[int]) -> None:
    """Makes the built d3rlpy ``algo`` honour the mask features at ``mask_indices``.

    ``algo.impl`` must exist (after ``build_with_dataset``, ``create_impl``, ``fit`` or
    ``load_learnable``). Applying again replaces the indices. Raises ``ValueError`` for an
    unsupported algorithm, an observation scaler (the mask is read from raw features) or
    indices that do not give one observation feature per action.
    """
    impl = algo.impl
    if impl is None:
        raise ValueError("build the algorithm before applying an action mask")
    base = _base_class(type(impl))
    if base is None:
        raise ValueError(f"action masks are not supported for {type(algo).__name__}; "
                         f"supported: DQN, DoubleDQN, DiscreteCQL, DiscreteBCQ, DiscreteBC")
    if algo.config.observation_scaler is not None:
        raise ValueError("action masks read raw mask features; train without an observation "
                         "scaler")
    shape = tuple(impl.observation_shape)
    if len(shape) != 1:
        raise ValueError(f"action masks need flat vector observations, got shape {shape}")
    indices = validate_mask_indices(mask_indices, shape[0], int(impl.action_size))
    impl.__class__ = _MASKED[base]
    setattr(impl, MASK_ATTRIBUTE, torch.tensor(indices, dtype=torch.long, device=impl.device))


def mask_indices_of(algo: Any) -> list[int] | None:
    """The mask indices applied to ``algo`` (None when it is not masked)."""
    index = getattr(algo.impl, MASK_ATTRIBUTE, None)
    return None if index is None else [int(i) for i in index.tolist()]
