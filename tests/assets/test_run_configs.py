"""The Dagster run configurations declare no setting of their own where the library has it:
defaults and descriptions are the library dataclasses'."""

from __future__ import annotations

import dataclasses

from assets.evaluation import EvaluationRunConfig
from assets.promotion import GateRunConfig
from assets.training import TrainingRunConfig
from offline_rl.algos.config import TrainingConfig
from offline_rl.configuration import describe
from offline_rl.ope.evaluate import OPEConfig
from offline_rl.ope.gate import GateConfig

PAIRS = [(TrainingRunConfig, TrainingConfig), (EvaluationRunConfig, OPEConfig),
         (GateRunConfig, GateConfig)]
OWN = {(TrainingRunConfig, "seed")}  # it seeds the train/eval split too: its own description


def test_shared_settings_take_the_library_default_and_description():
    for run_config, library in PAIRS:
        shared = {f.name for f in dataclasses.fields(library)} & set(run_config.model_fields)
        assert shared, run_config
        for name in shared - {n for (c, n) in OWN if c is run_config}:
            field = run_config.model_fields[name]
            value = getattr(library, name)
            assert field.default == (list(value) if isinstance(value, tuple) else value), name
            assert field.description == describe(library, name), name


def test_the_run_configs_build_the_library_configs_with_their_defaults():
    assert EvaluationRunConfig().ope_config() == OPEConfig(seed=0)
    gate = GateRunConfig().gate_config()
    assert gate == GateConfig(headline=None, max_weight_share=None)
    training = TrainingRunConfig().training_config()
    assert (training.n_steps, training.batch_size, training.learning_rate, training.device) == \
        (TrainingConfig.n_steps, TrainingConfig.batch_size, TrainingConfig.learning_rate,
         TrainingConfig.device)
