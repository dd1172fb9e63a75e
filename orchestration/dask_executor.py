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

Everything else is dagster-dask's: config schema, cluster types, ``build_dict`` (one thread per
local worker), step ordering by futures, resource tags, the worker function. Like dagster-dask,
it runs each step once (no step retries).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
import dask.distributed
from dagster._core.errors import raise_execution_interrupts
from dagster._core.events import DagsterEvent
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._utils import iterate_with_context
from dagster_dask import executor as upstream

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


class Opaque:
    """A box that ``distributed`` passes through ``submit`` without looking inside."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def task_key(job_name: str, run_id: str, step_key: str) -> str:
    """The Dask key of one step of one run, ``<job>.<run id>.<step>``: unique per run, so runs
    of the same job on one cluster never share a task or its result."""
    return f"{job_name}.{run_id}.{step_key}"


def run_step(dependencies: Sequence[Any], boxed: Opaque) -> Sequence[DagsterEvent]:
    """On the worker: runs one step with dagster-dask's worker function. ``dependencies`` are
    the upstream steps' results, passed only so that Dask orders the steps."""
    return upstream.query_on_dask_worker(dependencies, *boxed.value)


class BoxedArgumentsDaskExecutor(upstream.DaskExecutor):
    """dagster-dask's executor with each step's arguments submitted in an :class:`Opaque`."""

    def execute(self, plan_context: PlanOrchestrationContext,
                execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError(
                "Dask execution requires a persistent DagsterInstance")
        job_name = plan_context.job_name
        with dask.distributed.Client(self.cluster(job_name)) as client:
            futures: dict[str, dask.distributed.Future] = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    dependencies = [futures[key] for step_input in step.step_inputs
                                    for key in step_input.dependency_keys]
                    boxed = Opaque((plan_context.reconstructable_job, plan_context.dagster_run,
                                    plan_context.run_config, [step.key],
                                    plan_context.instance.get_ref(),
                                    execution_plan.known_state))
                    futures[step.key] = client.submit(
                        run_step, dependencies, boxed,
                        key=task_key(job_name, plan_context.dagster_run.run_id, step.key),
                        resources=upstream.get_dask_resource_requirements(step.tags))
            done = dask.distributed.as_completed(list(futures.values()), with_results=True)
            for _, events in iterate_with_context(raise_execution_interrupts, done):
                yield from events

    def cluster(self, job_name: str) -> Any:
        """The scheduler's address (``existing``) or a new cluster object of the chosen type."""
        if self.cluster_type == "existing":
            return self.cluster_configuration["address"]
        if self.cluster_type not in CLUSTERS:
            raise ValueError(f"unknown Dask cluster type {self.cluster_type!r}; "
                             f"expected 'existing' or one of {sorted(CLUSTERS)}")
        module, name = CLUSTERS[self.cluster_type].split(":")
        return getattr(importlib.import_module(module), name)(**self.build_dict(job_name))


@dg.executor(name="dask", config_schema=upstream.dask_executor.config_schema,
             requirements=dg.multiple_process_executor_requirements())
def dask_executor(init_context: dg.InitExecutorContext) -> BoxedArgumentsDaskExecutor:
    """Runs each step as a task on a Dask cluster (same run config as ``dagster_dask``):
    ``cluster: {local: {n_workers: 4}}`` starts a local cluster (one thread per worker),
    ``cluster: {existing: {address: tcp://scheduler:8786}}`` uses a running scheduler."""
    ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
    return BoxedArgumentsDaskExecutor(cluster_type, cluster_configuration)
