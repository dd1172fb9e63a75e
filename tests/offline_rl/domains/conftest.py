"""What the domain tests share: a simulator that records every decision it makes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest


def recording(base: type, fields: tuple[str, ...],
              observe: Callable[[Any, Any], np.ndarray] | None = None) -> type:
    """A subclass of simulator class ``base`` that notes, at every decision of a batch, the
    state's ``fields``, which rows were alive, the observation (``observe(simulator,
    state)``, default the simulator's own) and the behaviour probabilities, then the action,
    reward and done flags, as one dict per decision in its class attribute ``records``."""

    class Recorder(base):
        records: list[dict[str, np.ndarray]] = []

        def behavior_probs(self, s: Any) -> np.ndarray:
            probs = super().behavior_probs(s)
            obs = observe(self, s) if observe is not None else self.observe(s)
            self.records.append({**{f: getattr(s, f).copy() for f in fields},
                                 "alive": ~s.done, "obs": obs, "probs": probs})
            return probs

        def step(self, s: Any, action: np.ndarray, rng: np.random.Generator) -> Any:
            out = super().step(s, action, rng)
            self.records[-1].update(action=np.asarray(action).copy(), reward=out.reward.copy(),
                                    done=out.done.copy())
            return out

    Recorder.__name__ = f"Recording{base.__name__}"
    return Recorder


@pytest.fixture(scope="session")
def recorder() -> Callable[..., type]:
    """:func:`recording`, for the domain tests' fixtures."""
    return recording
