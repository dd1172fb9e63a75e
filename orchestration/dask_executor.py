"""Dagster's executor for Dask clusters (``dagster-dask``), made to work on partitioned runs.

``dagster_dask.dask_executor`` (0.29.27) fails on every run of a partitioned job with::

    Exception: Iteration is not allowed on `@record` TimeWindowPartitionsDefinition.

raised inside ``distributed.Client.submit``. ``submit`` passes every argument through
``dask._task_spec.parse_input``, which recurses into lists, sets, tuples and dicts to find
futures. dagster-dask submits the ``DagsterRun``, a ``NamedTuple``; a partitioned run's
``partitions_subset`` is a ``TimeWindowPartitionsSubset`` (another tuple) holding the
``TimeWindowPartitionsDefinition``, a dagster ``@record``: a ``NamedTuple`` whose ``__iter__``
raises. No setting of distributed turns the scan off (distributed 2024.10 to 2026.8 behave the
same), so this executor hands ``submit`` the step's arguments inside one :class:`Opaque` box,
which distributed neither scans nor needs to understand, and opens it on the worker.

Each step's Dask key names its run (:func:`task_key`): dagster-dask keys a task
``f"{job_name}.{step.key}"``, the same for every run of a job, and Dask treats equal keys as the
same task, so two runs of a job on one cluster could share a step's result (dagster issue
21418). With the run id in the key, every run's tasks are its own.

Each step is submitted with a Dask ``priority`` (:func:`critical_path`): the longest path of
work from the step to the end of the run, each step weighted by its seconds in the job's last
successful run on the instance (one second for a step not seen before). A worker with several
ready steps runs the one with the most work behind it first (steps ready at once are also
submitted in that order: an idle worker starts the first that arrives), so a domain's long
chain (train, then evaluate) starts early instead of leaving one worker alone on it at the end
of the night (dagster-dask submits without priorities; Dask then runs ready steps in submission
order). Priorities only order the steps a worker holds, so the clusters this module starts
(:func:`local_cluster`) assign every submitted step to a worker at once
(``distributed.scheduler.worker-saturation: inf``, :data:`SCHEDULER_CONFIG`): with Dask's
default queue of root steps, a domain whose raw steps waited in the queue started only when
the other domains' steps had drained the workers (one night's inventory chain began 96 s into
a 143 s run). A scheduler you start yourself (``existing``) wants the same setting.

Every worker gets SIGTERM's default action back (:class:`DefaultSigterm`, registered by each
run). Dagster maps SIGTERM to SIGINT's handler in the process that starts a run, and a
command started in the background by a shell (``cmd &``, ``nohup``) ignores SIGINT, so there
SIGTERM is ignored too; worker processes spawned from it (``offline-rl loop --workers``)
inherit that, and so do the ``tail`` processes Dagster's compute-log capture starts for each
step and stops with SIGTERM: each step then waited 2 x 30 s for them to stop and left them
running (the first night of ``offline-rl loop --events-per-day 1000000 --workers 2`` at the
nightly settings, started with ``nohup``: 1,155 s with them, 452 s without).

A step's events come back in an :class:`Opaque` too, with its pickled size as Dask's memory
estimate (``distributed.sizeof`` cannot size a list of ``DagsterEvent`` and logs a warning for
every step).

Everything else is dagster-dask's: config schema, cluster types, ``build_dict`` (one thread per
local worker), step ordering by futures, resource tags, the worker function. Like dagster-dask,
it runs each step once (no step retries).
"""

from __future__ import annotations

import importlib
import pickle
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import dagster as dg
import dask
import dask.distributed
from dagster._core.errors import raise_execution_interrupts
from dagster._core.events import DagsterEvent
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._utils import iterate_with_context
from dagster_dask import executor as upstream
from dask.sizeof import sizeof
from distributed.diagnostics.plugin import WorkerPlugin

CLUSTERS = {
    "local": "dask.distributed:LocalCluster",
    "ssh": "dask.distributed:SSHCluster",
    "yarn": "dask_yarn:YarnCluster",
    "pbs": "dask_jobqueue:PBSCluster",
    "moab": "dask_jobqueue:MoabCluster",
    "sge": "dask_jobqueue:SGECluster",
    "lsf": "dask_jobqueue:LSFCluster",
    "slurm": "dask_jobqueue:SLURMCluster",
    "oar": "dask_jobqueue:OARCluster",
    "kube": "dask_kubernetes:KubeCluster",
}
"""Cluster classes by the key under ``cluster:`` (the same table as dagster-dask's)."""


SCHEDULER_CONFIG = {"distributed.scheduler.worker-saturation": "inf"}
"""Dask settings of a scheduler that runs the nightly job: no queue of root steps on the
scheduler, so each worker orders all its steps by priority."""


def start_cluster(cluster_class: Any, **kwargs: Any) -> Any:
    """``cluster_class(**kwargs)``, its scheduler started with :data:`SCHEDULER_CONFIG`."""
    with dask.config.set(SCHEDULER_CONFIG):
        return cluster_class(**kwargs)


def local_cluster(**kwargs: Any) -> dask.distributed.LocalCluster:
    """A ``LocalCluster(**kwargs)`` whose scheduler has :data:`SCHEDULER_CONFIG`."""
    return start_cluster(dask.distributed.LocalCluster, **kwargs)


class Opaque:
    """A box that ``distributed`` passes through ``submit`` without looking inside."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


@sizeof.register(Opaque)
def _sizeof_opaque(box: Opaque) -> int:
    return len(pickle.dumps(box.value))


def task_key(job_name: str, run_id: str, step_key: str) -> str:
    """The Dask key of one step of one run, ``<job>.<run id>.<step>``: unique per run, so runs
    of the same job on one cluster never share a task or its result."""
    return f"{job_name}.{run_id}.{step_key}"


UNKNOWN_STEP_SECONDS = 1.0
"""The weight of a step without a duration in the job's last successful run."""


def critical_path(parents: Mapping[str, Sequence[str]], seconds: Mapping[str, float]
                  ) -> dict[str, float]:
    """Per step, its own seconds plus the most seconds of any chain of steps that depend on it
    (``parents``: each step's upstream steps; ``seconds``: known step durations, others count
    :data:`UNKNOWN_STEP_SECONDS`)."""
    children: dict[str, list[str]] = {step: [] for step in parents}
    for step, ups in parents.items():
        for up in ups:
            children.setdefault(up, []).append(step)
    rank: dict[str, float] = {}

    def visit(step: str) -> float:  # the plan is a DAG; memoised, each step once
        if step not in rank:
            after = max((visit(child) for child in children.get(step, ())), default=0.0)
            rank[step] = seconds.get(step, UNKNOWN_STEP_SECONDS) + after
        return rank[step]

    for step in children:
        visit(step)
    return rank


def last_step_seconds(instance: dg.DagsterInstance, job_name: str) -> dict[str, float]:
    """Seconds of each step in ``job_name``'s most recent successful run (empty: none yet)."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name,
                                                   statuses=[dg.DagsterRunStatus.SUCCESS]),
                             limit=1)
    if not runs:
        return {}
    return {s.step_key: s.end_time - s.start_time
            for s in instance.get_run_step_stats(runs[0].run_id)
            if s.start_time is not None and s.end_time is not None}


class DefaultSigterm(WorkerPlugin):
    """Gives a worker process whose SIGTERM is ignored (inherited: see the module's docs) the
    default action back, so the processes its steps start stop when they are told to."""

    name = "offline-rl-default-sigterm"

    def setup(self, worker: Any) -> None:
        # a nanny's worker runs its event loop, and so this, on the main thread; signal
        # dispositions can only be changed there
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_step(dependencies: Sequence[Any], boxed: Opaque) -> Opaque:
    """On the worker: runs one step with dagster-dask's worker function and returns its events,
    boxed. ``dependencies`` are the upstream steps' results, passed only so that Dask orders
    the steps."""
    return Opaque(upstream.query_on_dask_worker(dependencies, *boxed.value))


class BoxedArgumentsDaskExecutor(upstream.DaskExecutor):
    """dagster-dask's executor with each step's arguments submitted in an :class:`Opaque`."""

    def execute(self, plan_context: PlanOrchestrationContext,
                execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError(
                "Dask execution requires a persistent DagsterInstance")
        job_name = plan_context.job_name
        levels = execution_plan.get_steps_to_execute_by_level()
        parents = {step.key: [key for step_input in step.step_inputs
                              for key in step_input.dependency_keys]
                   for level in levels for step in level}
        priority = critical_path(parents, last_step_seconds(plan_context.instance, job_name))
        with dask.distributed.Client(self.cluster(job_name)) as client:
            client.register_plugin(DefaultSigterm())
            futures: dict[str, dask.distributed.Future] = {}
            for level in levels:  # each level's steps most work first: idle workers take them
                for step in sorted(level, key=lambda step: -priority[step.key]):
                    dependencies = [futures[key] for key in parents[step.key]]
                    boxed = Opaque((plan_context.reconstructable_job, plan_context.dagster_run,
                                    plan_context.run_config, [step.key],
                                    plan_context.instance.get_ref(),
                                    execution_plan.known_state))
                    futures[step.key] = client.submit(
                        run_step, dependencies, boxed,
                        key=task_key(job_name, plan_context.dagster_run.run_id, step.key),
                        priority=round(priority[step.key] * 1000),
                        resources=upstream.get_dask_resource_requirements(step.tags))
            done = dask.distributed.as_completed(list(futures.values()), with_results=True)
            for _, events in iterate_with_context(raise_execution_interrupts, done):
                yield from events.value

    def cluster(self, job_name: str) -> Any:
        """The scheduler's address (``existing``) or a new cluster object of the chosen type."""
        if self.cluster_type == "existing":
            return self.cluster_configuration["address"]
        if self.cluster_type not in CLUSTERS:
            raise ValueError(f"unknown Dask cluster type {self.cluster_type!r}; "
                             f"expected 'existing' or one of {sorted(CLUSTERS)}")
        module, name = CLUSTERS[self.cluster_type].split(":")
        return start_cluster(getattr(importlib.import_module(module), name),
                             **self.build_dict(job_name))


@dg.executor(name="dask", config_schema=upstream.dask_executor.config_schema,  # type: ignore[call-overload]  # dagster's stub takes no IDefinitionConfigSchema; its runtime does
             requirements=dg.multiple_process_executor_requirements())
def dask_executor(init_context: dg.InitExecutorContext) -> BoxedArgumentsDaskExecutor:
    """Runs each step as a task on a Dask cluster (same run config as ``dagster_dask``):
    ``cluster: {local: {n_workers: 4}}`` starts a local cluster (one thread per worker),
    ``cluster: {existing: {address: tcp://scheduler:8786}}`` uses a running scheduler."""
    # the config schema's "cluster" is a selector: a dict of one cluster type and its config
    cluster = cast(Mapping[str, Any], init_context.executor_config["cluster"])
    ((cluster_type, cluster_configuration),) = cluster.items()
    return BoxedArgumentsDaskExecutor(cluster_type, cluster_configuration)
