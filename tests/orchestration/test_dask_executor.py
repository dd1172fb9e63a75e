"""The nightly job on a Dask cluster (``orchestration.dask_executor``, the ``dask`` extra)."""

from __future__ import annotations

import datetime as dt
import os
import pickle
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from offline_rl.data.warehouse import Warehouse
from offline_rl.paths import DataPaths
from offline_rl.shop import write_landing
from orchestration.partitions import daily

if TYPE_CHECKING:
    from orchestration.dask_executor import Opaque

pytestmark = pytest.mark.skipif(find_spec("dagster_dask") is None,
                                reason="needs the dask extra: pip install -e '.[dask]'")
DAY = dt.date(2026, 3, 1)


def _open(box: Opaque) -> object:
    return box.value


def test_partitions_definition_passes_submit_only_in_the_box():
    from distributed import Client

    from orchestration.dask_executor import Opaque

    with Client(processes=False, n_workers=1, threads_per_worker=1,
                dashboard_address=None) as client:
        # what dagster-dask submits unboxed: distributed scans the tuple and the @record refuses
        with pytest.raises(Exception, match="Iteration is not allowed on `@record`"):
            client.submit(len, ("run", daily))
        assert client.submit(_open, Opaque(("run", daily))).result() == ("run", daily)
    # worker processes receive the box pickled
    assert pickle.loads(pickle.dumps(Opaque(("run", daily)))).value == ("run", daily)


def test_nightly_dask_is_the_nightly_selection_on_dask_and_nightly_stays_multiprocess():
    from orchestration.definitions import defs

    nightly, on_dask = defs.resolve_job_def("nightly"), defs.resolve_job_def("nightly_dask")
    assert on_dask.executor_def.name == "dask"
    assert nightly.executor_def.name == "multiprocess"
    assert on_dask.asset_layer.executable_asset_keys == nightly.asset_layer.executable_asset_keys
    assert on_dask.partitions_def == nightly.partitions_def


def test_nightly_dask_trains_and_evaluates_on_two_worker_processes(tmp_path: Path):
    """One domain's training and evaluation of a tiny night, each step a Dask task, after
    its data was ingested and its transitions built in this process."""
    from orchestration.cli import run_job
    from orchestration.definitions import nightly_dask_job_def

    home = tmp_path / "home"
    write_landing(home, days=1, start=DAY, seed=4, events_per_day=3000)
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    data = {"resources": {"data_home": {"config": {"home": str(home)}}}}
    run_job("ingest", DAY, data, instance)
    run_job("transitions", DAY, data, instance, domains=["recommendation"])
    local = {"n_workers": 2, "processes": True, "dashboard_address": None}
    config = {**data, "execution": {"config": {"cluster": {"local": local}}},
              "ops": {"recommendation_candidates": {"config": {
                          "n_steps": 50, "seed": 0, "device": "cpu", "algorithms": ["bc"],
                          "settle_days": 0}},
                      "recommendation_ope": {"config": {
                          "fqe_steps": 50, "fqe_refits": 2, "n_bootstrap": 50,
                          "device": "cpu"}}}}
    steps = [dg.AssetKey("recommendation_candidates"), dg.AssetKey("recommendation_ope")]
    result = dg.execute_job(dg.reconstructable(nightly_dask_job_def), instance=instance,
                            run_config=config, tags={"dagster/partition": DAY.isoformat()},
                            asset_selection=steps)
    assert result.success
    done = {e.step_key: e for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert set(done) == {k.path[-1] for k in steps}
    # every step ran in a Dask worker process, not in this (the run's) process
    pids = {e.pid for e in done.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # the futures ordered the steps: the evaluation started after the training was written
    logs = instance.all_logs(result.run_id)
    started = {e.step_key: e.timestamp for e in logs
               if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"}
    finished = {e.step_key: e.timestamp for e in logs
                if e.dagster_event and e.dagster_event.event_type_value == "STEP_SUCCESS"}
    assert started["recommendation_ope"] >= finished["recommendation_candidates"]
    estimates = Warehouse(DataPaths(home).warehouse).query(
        "registry/select_estimates", domain="recommendation", day=DAY)
    assert {"bc", "behavior"} <= set(estimates["policy"])


def test_each_runs_task_keys_name_the_run():
    from orchestration.dask_executor import task_key

    first, second = (task_key("nightly_dask", run, "raw_clickstream")
                     for run in ("7f3c0a1e-run-a", "0b9d22c4-run-b"))
    assert first != second
    assert first == "nightly_dask.7f3c0a1e-run-a.raw_clickstream"


@dg.op(config_schema={"value": int, "delay": float})
def _slow_value(context) -> int:  # type: ignore[no-untyped-def]
    import time

    time.sleep(context.op_config["delay"])
    return context.op_config["value"]


@dg.op
def _record(context, value: int) -> int:  # type: ignore[no-untyped-def]
    context.log.info(f"value {value}")
    context.add_output_metadata({"value": value})
    return value


def _two_steps_on_dask():
    from orchestration.dask_executor import dask_executor

    @dg.job(executor_def=dask_executor)
    def two_steps() -> None:
        _record(_slow_value())

    return two_steps


def test_two_concurrent_runs_of_one_job_on_one_cluster_keep_their_own_results(tmp_path):
    """Both runs' steps are in flight on the same scheduler at once; each run gets its own
    value. With dagster-dask's keys (no run id) the second run's tasks would be the first's."""
    import threading

    from distributed import LocalCluster
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Keys(SchedulerPlugin):
        def __init__(self) -> None:
            self.keys: set[str] = set()

        def update_graph(self, scheduler, *, keys, **kwargs):  # type: ignore[no-untyped-def]
            self.keys.update(str(k) for k in keys)

    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    results: dict[int, dg.ExecuteJobResult] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        seen = Keys()
        cluster.scheduler.add_plugin(seen)

        def run(value: int) -> None:
            config = {"ops": {"_slow_value": {"config": {"value": value, "delay": 1.5}}},
                      "execution": {"config": {"cluster": {
                          "existing": {"address": cluster.scheduler_address}}}}}
            with dg.execute_job(dg.reconstructable(_two_steps_on_dask), instance=instance,
                                run_config=config) as result:
                results[value] = result

        threads = [threading.Thread(target=run, args=(value,)) for value in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert set(results) == {1, 2} and all(r.success for r in results.values())
    for value, result in results.items():
        recorded = [e.step_output_data.metadata["value"].value for e in result.all_events
                    if e.event_type_value == "STEP_OUTPUT" and e.step_key == "_record"]
        assert recorded == [value]
    run_ids = {r.run_id for r in results.values()}
    assert len(seen.keys) == 4  # two steps of each run, under four distinct keys
    assert {k.split(".")[1] for k in seen.keys} == run_ids


def _sigterm_action() -> str:
    import signal

    return str(signal.getsignal(signal.SIGTERM))


def _cluster_started_ignoring_sigterm():  # type: ignore[no-untyped-def]
    """A one-worker local cluster started while this process ignores SIGTERM (as one started
    in the background does once dagster maps SIGTERM to the ignored SIGINT)."""
    import signal

    from orchestration.dask_executor import local_cluster

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        return local_cluster(n_workers=1, threads_per_worker=1, dashboard_address=None)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_steps_on_workers_that_inherited_an_ignored_sigterm_end_at_once(tmp_path):
    """Started in the background, the process that starts the workers ignores SIGTERM
    (dagster maps it to SIGINT's handler, ignored there) and its worker processes inherit
    that. Each run gives them the default back, so the tail processes of every step's
    compute-log capture stop when told to (else: 2 x 30 s per step and the tails left over)."""
    import signal
    import time

    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    cluster = _cluster_started_ignoring_sigterm()
    started = time.perf_counter()
    with cluster, dg.execute_job(
            dg.reconstructable(_two_steps_on_dask), instance=instance, run_config={
                "ops": {"_slow_value": {"config": {"value": 3, "delay": 0.0}}},
                "execution": {"config": {"cluster": {
                    "existing": {"address": cluster.scheduler_address}}}}}) as result:
        from distributed import Client

        seconds = time.perf_counter() - started
        assert result.success
        with Client(cluster) as client:
            actions = client.run(_sigterm_action)
    assert set(actions.values()) == {str(signal.SIG_DFL)}
    engine = [e.message or "" for e in result.all_events if e.event_type_value == "ENGINE_EVENT"]
    assert not [m for m in engine if "compute log" in m], engine
    assert seconds < 30  # each of the two steps waited 60 s for its tails


def test_the_workers_of_a_process_ignoring_sigterm_inherit_it():
    """What the test above relies on: without the run's plugin, the worker ignores SIGTERM."""
    import signal

    from distributed import Client

    cluster = _cluster_started_ignoring_sigterm()
    with cluster, Client(cluster) as client:
        assert set(client.run(_sigterm_action).values()) == {str(signal.SIG_IGN)}


def test_critical_path_weighs_each_chain_by_its_steps_seconds():
    from orchestration.dask_executor import UNKNOWN_STEP_SECONDS, critical_path

    parents = {"raw": [], "train": ["raw"], "ope": ["train"], "gate": ["ope"],
               "report": ["raw"]}
    seconds = {"raw": 0.5, "train": 10.0, "ope": 30.0, "gate": 0.5}
    rank = critical_path(parents, seconds)
    assert rank["gate"] == 0.5 and rank["ope"] == 30.5 and rank["train"] == 40.5
    assert rank["report"] == UNKNOWN_STEP_SECONDS
    assert rank["raw"] == 0.5 + 40.5  # the longer of its two chains
    assert critical_path(parents, {})["raw"] == 4 * UNKNOWN_STEP_SECONDS


@dg.op(config_schema={"delay": float})
def _start(context) -> int:  # type: ignore[no-untyped-def]
    import time

    time.sleep(context.op_config["delay"])
    return 0


@dg.op(config_schema={"delay": float})
def _then(context, previous: int) -> int:  # type: ignore[no-untyped-def]
    import time

    time.sleep(context.op_config["delay"])
    return previous


def _two_chains_on_dask():
    from orchestration.dask_executor import dask_executor

    @dg.job(executor_def=dask_executor)
    def two_chains() -> None:
        # chain a: three quick steps; chain b: two steps, the second slow
        _then.alias("a3")(_then.alias("a2")(_start.alias("a1")()))
        _then.alias("b2")(_start.alias("b1")())

    return two_chains


def test_a_run_starts_the_chain_with_the_most_seconds_behind_it_first(tmp_path):
    """One worker, two ready chains. Without history the three-step chain counts for more;
    once a run has shown that chain b's second step is the slow one, b goes first."""
    from distributed import LocalCluster

    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    delays = {"a1": 0.05, "a2": 0.05, "a3": 0.05, "b1": 0.05, "b2": 1.5}
    first_started = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        for _ in range(2):
            config = {"ops": {k: {"config": {"delay": v}} for k, v in delays.items()},
                      "execution": {"config": {"cluster": {
                          "existing": {"address": cluster.scheduler_address}}}}}
            with dg.execute_job(dg.reconstructable(_two_chains_on_dask), instance=instance,
                                run_config=config) as result:
                assert result.success
                starts = {e.step_key: e.timestamp for e in instance.all_logs(result.run_id)
                          if e.dagster_event
                          and e.dagster_event.event_type_value == "STEP_START"}
                first_started.append(min(starts, key=starts.__getitem__))
    assert first_started == ["a1", "b1"]
