"""``training.json`` through its one reader and writer, ``CandidateRecord``."""

import json

import pytest

from offline_rl.algos.record import CandidateRecord, DataWindow, Split, TrainingContext

CONTEXT = TrainingContext(
    domain="cart",
    data_window=DataWindow("2026-10-01", "2026-10-14", 14),
    split=Split(eval_fraction=0.3, seed=7, train_episodes=70, eval_episodes=30, settle_days=1,
                eval_start="2026-10-10", eval_end="2026-10-13", max_train_rows=2000),
    feature_names=("cart_value", "items", "coupon_ok"),
    action_map={"0": "none", "1": "coupon"},
    action_mask_feature=("coupon_ok",),
)


def _record(**changes):
    fields = dict(name="cql", algorithm="DiscreteCQL", device="cpu", seconds=1.5,
                  training_config={"seed": 7, "reward_scale": 0.25}, mask_indices=(2,),
                  learning_curve=({"step": 10.0, "loss": 0.5},), context=CONTEXT)
    return CandidateRecord(**{**fields, **changes})


def test_round_trip_keeps_the_flat_layout(tmp_path):
    record = _record(extra={"distributed": {"world_size": 2}})
    path = record.write(tmp_path)
    data = json.loads(path.read_text())
    # the layout exports, MLflow and older readers know: data facts at the top level
    assert data["split"]["eval_start"] == "2026-10-10"
    assert data["feature_schema"] == {"names": ["cart_value", "items", "coupon_ok"]}
    assert data["action_mask_feature"] == ["coupon_ok"]
    assert data["distributed"] == {"world_size": 2}
    assert data["mask_indices"] == [2]
    read = CandidateRecord.read(tmp_path)
    assert read == record
    assert (read.context.split.max_train_rows, read.context.split.max_eval_rows) == (2000, None)
    assert read.seed == 7 and read.reward_scale == 0.25


def test_a_record_without_a_data_window_keeps_its_facts_in_extra(tmp_path):
    (tmp_path / "training.json").write_text(json.dumps(
        {"name": "dqn", "algorithm": "DQN", "feature_schema": {"names": ["a", "b"]},
         "action_mask_feature": ["b"]}))
    record = CandidateRecord.read(tmp_path)
    assert record.context is None
    assert record.extra["feature_schema"] == {"names": ["a", "b"]}
    assert record.as_dict()["action_mask_feature"] == ["b"]
    with pytest.raises(ValueError, match="records no data window"):
        record.require_context(tmp_path)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"algorithm": "DQN"}', "missing field 'name'"),
    ('{"name": "dqn", "algorithm": "DQN", "data_window": {"start": "x", "end": "y", '
     '"days": 3}, "domain": "cart"}', "missing field 'split'"),
    ('{"name": "dqn", "algorithm": "DQN", "mask_indices": ["x"]}', "invalid literal"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_records_name_the_file_and_the_field(tmp_path, text, message):
    (tmp_path / "training.json").write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        CandidateRecord.read(tmp_path)
    assert str(tmp_path / "training.json") in str(info.value)


def test_a_missing_record_says_where(tmp_path):
    assert not CandidateRecord.exists(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        CandidateRecord.read(tmp_path)
