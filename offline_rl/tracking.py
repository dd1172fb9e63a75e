"""Optional MLflow tracking of the nightly pipeline (the ``mlflow`` extra).

Off unless a tracking URI is set (``$OFFLINE_RL_MLFLOW_URI``, or the ``data_home``
resource's ``mlflow_uri``). When on, each domain has one experiment, named after the domain,
holding a run per

* trained candidate (``train <candidate> <day>``): the training config, seed, data window and
  split as parameters, the learning curve as metrics by gradient step, ``training.json`` and
  the d3rlpy model file (``model.d3``) as artifacts;
* night's evaluation (``ope <day>``): the behaviour policy's on-policy value, the OPE settings,
  the forest plot and every estimate as JSON; with a child run per evaluated policy
  (``ope <policy> <day>``) holding each estimate with its interval (``<estimator>``,
  ``<estimator>_low``, ``_high``, ``_stderr``) and the diagnostics (ESS, ESS fraction,
  largest weight share, ...);
* gate decision (``gate <day>``): promoted or not (tag and metric), the reasons (as the run's
  description), the gate's settings, each candidate's verdict and the decision's report.

The policy in production (what ``exports/<domain>/latest`` names) is a version of the
registered model named after the domain, with the alias ``champion``: a promotion registers
the new export (run ``export <version>``) and moves the alias; a rollback (``offline-rl
exports rollback``, or the monitor's) moves it back, registering the target first if it never
was. ``mlflow.pyfunc.load_model("models:/<domain>@champion")`` serves the export
(:mod:`offline_rl.export.pyfunc`).

Tracking never fails the pipeline: every call catches what goes wrong (MLflow unreachable,
refusing a write, not installed), logs a warning naming the URI and the error, and returns a
:class:`Tracked` saying so, which the assets put in their metadata. Against an HTTP tracking
server, unless set otherwise, a request is tried 3 times within about 20 s
(``HTTP_DEFAULTS``), so an unreachable server costs a step seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from offline_rl.algos.record import FILE_NAME, CandidateRecord
from offline_rl.paths import Location, RemotePath, as_location

log = logging.getLogger(__name__)

MLFLOW_URI_ENV = "OFFLINE_RL_MLFLOW_URI"
MLFLOW_ARTIFACTS_ENV = "OFFLINE_RL_MLFLOW_ARTIFACTS"
CHAMPION = "champion"
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
"""MLflow's HTTP settings while this module talks to a server, where the environment does not
set them (MLflow's own defaults retry for minutes)."""
MAX_MESSAGE = 400


@dataclass(frozen=True)
class Tracked:
    """What one tracking call did: ``ok`` and what was logged, or the warning."""

    ok: bool
    uri: str
    message: str

    def metadata(self) -> dict[str, str]:
        """The asset metadata entry: ``{"mlflow": ...}``."""
        return {"mlflow": self.message if self.ok else f"WARNING: {self.message}"}


@dataclass(frozen=True)
class Tracker:
    """Logs the pipeline's stages to the MLflow tracking server or store at ``uri``.

    Attributes:
        uri: Tracking (and model registry) URI: ``http://host:5000``, ``sqlite:///path.db``,
            ``databricks``, ...
        artifact_root: Where experiments created here keep their artifacts
            (``<artifact_root>/<domain>``), e.g. ``file:///srv/mlflow-artifacts`` or
            ``s3://bucket/mlflow``; empty: ``mlartifacts/`` beside a SQLite database, else
            the server's default (``./mlruns`` of the working directory for other database
            stores).
    """

    uri: str
    artifact_root: str = ""

    @classmethod
    def resolve(cls, uri: str | None = None, artifact_root: str | None = None
                ) -> Tracker | None:
        """``uri`` or ``$OFFLINE_RL_MLFLOW_URI``, with ``artifact_root`` or
        ``$OFFLINE_RL_MLFLOW_ARTIFACTS``; None (tracking off) when neither URI is set. Reads the
        environment when called."""
        uri = uri or os.environ.get(MLFLOW_URI_ENV, "")
        if not uri.strip():
            return None
        root = artifact_root or os.environ.get(MLFLOW_ARTIFACTS_ENV, "")
        return cls(uri=uri.strip(), artifact_root=root.strip().rstrip("/"))

    # ------------------------------------------------------------------ the stages

    def log_training(self, domain: str, day: Any, model_dirs: Sequence[Path]) -> Tracked:
        """One run per trained candidate, from what training saved in its folder."""
        def body() -> str:
            client = self._client()
            experiment = self._experiment(client, domain)
            for directory in model_dirs:
                self._training_run(client, experiment, domain, str(day), Path(directory))
            return f"{len(model_dirs)} training run(s) in experiment {domain!r}"
        return self._guard(f"{domain} {day} training", body)

    def log_evaluation(self, domain: str, day: Any, behavior: Any, evaluations: Sequence[Any],
                       config: Any = None, forest_png: bytes | None = None) -> Tracked:
        """The night's OPE: a parent run with the behaviour policy's value, the settings
        (``config``: an ``OPEConfig`` or a mapping) and the forest plot (``forest_png``, drawn
        here when not given), a child run per evaluated policy with its estimates and
        diagnostics."""
        def body() -> str:
            client = self._client()
            experiment = self._experiment(client, domain)
            tags = {"stage": "evaluation", "domain": domain, "partition_date": str(day)}
            metrics = {f"behavior_{k}": v for k, v in behavior.as_dict().items()}
            png = forest_png
            if png is None:
                from offline_rl.report import ope_forest_plot

                png = ope_forest_plot(domain, str(day), behavior, evaluations)
            with self._run(client, experiment, f"ope {day}", tags) as run_id:
                self._log(client, run_id, params=_flat(_record(config)), metrics=metrics)
                estimates = {ev.name: {k: e.as_dict() for k, e in ev.estimates.items()}
                             for ev in evaluations}
                with tempfile.TemporaryDirectory(prefix="mlflow-ope-") as tmp:
                    files = {"estimates.json": json.dumps(
                        {"behavior": behavior.as_dict(), "policies": estimates}, indent=2)}
                    _write(Path(tmp), files)
                    if png:
                        (Path(tmp) / "forest_plot.png").write_bytes(png)
                    client.log_artifacts(run_id, tmp, "ope")
                for ev in evaluations:
                    child = {**tags, "policy": ev.name, "mlflow.parentRunId": run_id}
                    with self._run(client, experiment, f"ope {ev.name} {day}", child) as cid:
                        values = {}
                        for name, e in ev.estimates.items():
                            values.update({name: e.value, f"{name}_low": e.low,
                                           f"{name}_high": e.high, f"{name}_stderr": e.stderr})
                        values.update(ev.diagnostics.as_dict())
                        values["disagreement"] = ev.disagreement
                        self._log(client, cid, metrics=values)
            return f"OPE run {run_id} with {len(evaluations)} policy run(s)"
        return self._guard(f"{domain} {day} evaluation", body)

    def log_decision(self, domain: str, day: Any, decision: Any,
                     reports: Sequence[Path] = ()) -> Tracked:
        """The gate's decision: promoted or not, the reasons, settings, verdicts, report."""
        def body() -> str:
            client = self._client()
            experiment = self._experiment(client, domain)
            record = decision.as_dict()
            tags = {"stage": "gate", "domain": domain, "partition_date": str(day),
                    "promoted": str(bool(decision.promoted)).lower(),
                    "candidate": decision.candidate or "", "incumbent": decision.incumbent.name,
                    # MLflow keeps at most 8,000 characters of a tag
                    "mlflow.note.content": "\n".join(f"- {r}" for r in decision.reasons)[:8000]}
            metrics = {"promoted": float(bool(decision.promoted)),
                       "incumbent_value": decision.incumbent.value}
            for verdict in decision.verdicts:
                metrics.update({f"{verdict.name}.passed": float(verdict.passed),
                                f"{verdict.name}.lower_bound": verdict.lower_bound,
                                f"{verdict.name}.estimate": verdict.estimate,
                                f"{verdict.name}.p_value": verdict.p_value})
            with self._run(client, experiment, f"gate {day}", tags) as run_id:
                self._log(client, run_id, params=_flat(record["config"]), metrics=metrics)
                with tempfile.TemporaryDirectory(prefix="mlflow-gate-") as tmp:
                    _write(Path(tmp), {"decision.json": json.dumps(record, indent=2,
                                                                   default=str)})
                    client.log_artifacts(run_id, tmp, "gate")
                for report in reports:
                    if Path(report).is_file():
                        client.log_artifact(run_id, str(report), "gate")
            verdict = "promoted " + str(decision.candidate) if decision.promoted \
                else "kept the incumbent"
            return f"gate run {run_id} ({verdict})"
        return self._guard(f"{domain} {day} gate decision", body)

    def sync_champion(self, export_root: Location | str, domain: str) -> Tracked:
        """Points the registered model's ``champion`` alias at the export ``latest`` names
        (after a promotion or a rollback), registering that export first if no version of
        the model holds it yet. Nothing to do while the domain has no export."""
        def body() -> str:
            from offline_rl.export.registry import current_version

            root = as_location(export_root) / domain
            version = current_version(root)
            if version is None:
                return f"no export of {domain} yet; nothing registered"
            client = self._client()
            model_version, registered = self._model_version(client, root, domain, version)
            client.set_registered_model_alias(domain, CHAMPION, model_version)
            how = "registered and " if registered else ""
            return (f"{how}models:/{domain}@{CHAMPION} -> version {model_version} "
                    f"(export {version})")
        return self._guard(f"{domain} {CHAMPION} alias", body)

    # ------------------------------------------------------------------ internals

    def _guard(self, what: str, body: Any) -> Tracked:
        try:
            with _bounded_http():
                return Tracked(True, self.uri, f"{body()} at {self.uri}")
        except ImportError as exc:
            error = f"{exc} (install the mlflow extra: pip install '.[mlflow]')"
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the pipeline
            error = f"{type(exc).__name__}: {exc}"
        error = " ".join(error.split())
        if len(error) > MAX_MESSAGE:
            error = error[:MAX_MESSAGE] + " ..."
        message = f"{what} not logged to MLflow at {self.uri}: {error}"
        log.warning(message)
        return Tracked(False, self.uri, message)

    def _client(self) -> Any:
        from mlflow import MlflowClient

        database = _sqlite_file(self.uri)
        if database is None:
            return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        # the first use of a SQLite store creates its tables; the nightly job's parallel steps
        # would race to (alembic fails on a half-migrated database), so the stores are opened
        # one process at a time
        database.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(database.with_name(database.name + ".lock")):
            client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        return client

    def _experiment(self, client: Any, domain: str) -> str:
        found = client.get_experiment_by_name(domain)
        if found is not None:
            return str(found.experiment_id)
        root = self.artifact_root
        database = _sqlite_file(self.uri)
        if not root and database is not None:
            root = (database.resolve().parent / "mlartifacts").as_uri()
        location = f"{root}/{domain}" if root else None
        try:
            return str(client.create_experiment(
                domain, artifact_location=location,
                tags={"mlflow.note.content": f"Offline RL pipeline, domain {domain}"}))
        except Exception:
            found = client.get_experiment_by_name(domain)  # created meanwhile elsewhere
            if found is None:
                raise
            return str(found.experiment_id)

    @contextlib.contextmanager
    def _run(self, client: Any, experiment: str, name: str, tags: Mapping[str, str]
             ) -> Iterator[str]:
        run = client.create_run(experiment, run_name=name, tags=dict(tags))
        run_id = run.info.run_id
        try:
            yield run_id
        except BaseException:
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")

    @staticmethod
    def _log(client: Any, run_id: str, *, params: Mapping[str, Any] | None = None,
             metrics: Mapping[str, Any] | None = None, step: int = 0) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, _number(v), now, step) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)[:6000]) for k, v in (params or {}).items()])

    def _training_run(self, client: Any, experiment: str, domain: str, day: str,
                      directory: Path) -> str:
        from mlflow.entities import Metric

        record = CandidateRecord.read(directory)
        name = record.name
        tags = {"stage": "training", "domain": domain, "partition_date": day,
                "candidate": name, "algorithm": record.algorithm}
        context = record.context.as_dict() if record.context is not None else {}
        params = _flat({
            "algorithm": record.algorithm, "device": record.device, "seed": record.seed,
            "training_config": dict(record.training_config),
            "data_window": context.get("data_window"), "split": context.get("split"),
            "warm_start": record.warm_start,
            "d3rlpy_version": record.d3rlpy_version,
            "torch_version": record.torch_version,
        })
        with self._run(client, experiment, f"train {name} {day}", tags) as run_id:
            self._log(client, run_id, params=params,
                      metrics={"train_seconds": record.seconds})
            curve = []
            for point in record.learning_curve:
                step = int(point.get("step", 0))
                curve += [Metric(k, _number(v), int(time.time() * 1000), step)
                          for k, v in point.items() if k not in ("step", "epoch")]
            for start in range(0, len(curve), 500):  # MLflow takes 1,000 metrics a batch
                client.log_batch(run_id, metrics=curve[start:start + 500])
            for file in (FILE_NAME, "model.d3"):
                if (directory / file).is_file():
                    client.log_artifact(run_id, str(directory / file), "model")
        return str(run_id)

    def _model_version(self, client: Any, domain_root: Location, domain: str, version: str
                       ) -> tuple[str, bool]:
        """The registered model version holding export ``version`` (same policy checksum),
        registering it if there is none; and whether it was registered now."""
        from offline_rl.export.loader import MANIFEST, POLICY_FILE
        from offline_rl.export.registry import verify_version

        path = verify_version(domain_root, version)  # only a verified export is served
        manifest = json.loads((path / MANIFEST).read_text())
        digest = str((manifest.get("sha256") or {}).get(manifest.get("policy_file",
                                                                      POLICY_FILE), ""))
        _ensure_registered_model(client, domain)
        for mv in client.search_model_versions(f"name = '{domain}'"):
            tags = mv.tags or {}
            if tags.get("export_version") == version and tags.get("export_sha256") == digest:
                return str(mv.version), False
        experiment = self._experiment(client, domain)
        decision = manifest.get("decision") or {}
        tags = {"stage": "export", "domain": domain, "export_version": version,
                "partition_date": str(decision.get("partition_date", "")),
                "candidate": str(manifest.get("candidate", "")),
                "algorithm": str(manifest.get("algorithm", ""))}
        with self._run(client, experiment, f"export {version}", tags) as run_id:
            self._log(client, run_id, params=_flat({
                "export_version": version, "export_path": str(path),
                "exploration": manifest.get("exploration"),
                "data_window": manifest.get("data_window")}),
                metrics={f"promise_{k}": v for k, v in (manifest.get("promise") or {}).items()
                         if k in ("value", "low", "high")})
            with tempfile.TemporaryDirectory(prefix="mlflow-export-") as tmp:
                model_dir = Path(tmp) / "model"
                _save_pyfunc(_local_copy(path, Path(tmp) / version), model_dir)
                client.log_artifacts(run_id, str(model_dir), "model")
            source = f"{client.get_run(run_id).info.artifact_uri}/model"
        mv_tags = {**tags, "export_sha256": digest, "export_path": str(path)}
        training = self._training_run_id(client, experiment, tags)
        if training:
            mv_tags["training_run_id"] = training
        reasons = decision.get("reasons") or []
        mv = client.create_model_version(
            domain, source=source, run_id=run_id, tags=mv_tags,
            description=f"export {version} of {domain}: {manifest.get('candidate')} "
                        f"({manifest.get('algorithm')}) promoted on "
                        f"{decision.get('partition_date')}"
                        + (f"; {reasons[0]}" if reasons else ""))
        return str(mv.version), True

    @staticmethod
    def _training_run_id(client: Any, experiment: str, tags: Mapping[str, str]) -> str | None:
        if not tags.get("candidate") or not tags.get("partition_date"):
            return None
        runs = client.search_runs(
            [experiment], max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=(f"tags.stage = 'training' and tags.candidate = "
                           f"'{tags['candidate']}' and tags.partition_date = "
                           f"'{tags['partition_date']}'"))
        return str(runs[0].info.run_id) if runs else None


# ---------------------------------------------------------------------- helpers

def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # created meanwhile elsewhere
            client.create_registered_model(
                name, description=f"The {name} policy; alias {CHAMPION}: the one in "
                                  "production (exports/<domain>/latest)")


def _save_pyfunc(export_dir: Path, model_dir: Path) -> None:
    """Saves the export as a pyfunc model (:class:`offline_rl.export.pyfunc.ExportModel`)."""
    import mlflow.pyfunc

    from offline_rl.export.loader import load_policy
    from offline_rl.export.pyfunc import EXPORT_ARTIFACT, ExportModel, signature

    policy = load_policy(export_dir)
    mlflow.pyfunc.save_model(
        str(model_dir), python_model=ExportModel(),
        artifacts={EXPORT_ARTIFACT: str(export_dir)}, signature=signature(policy),
        pip_requirements=_requirements())


def _requirements() -> list[str]:
    """What loading the model needs (pinned to this environment), without MLflow's slow
    inference of them."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("mlflow-skinny", "torch", "numpy", "pandas", "offline-rl-shop"):
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{name}=={version(name).split('+')[0]}")
    return out


def _local_copy(path: Location, target: Path) -> Path:
    """A local folder with the export's files (the export itself when it is local)."""
    if not isinstance(path, RemotePath):
        return Path(path)
    target.mkdir(parents=True)
    for child in path.iterdir():
        if child.is_file():
            (target / child.name).write_bytes(child.read_bytes())
    return target


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path)


def _record(config: Any) -> dict[str, Any]:
    """A config dataclass or mapping as a dict (empty for None)."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return dict(config)


def _write(folder: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(text)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (lists and tuples as JSON); None left out."""
    out: dict[str, str] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = str(value)
    return out


@contextlib.contextmanager
def _bounded_http() -> Iterator[None]:
    """``HTTP_DEFAULTS`` in the environment while MLflow is called, where not set."""
    added = [k for k in HTTP_DEFAULTS if k not in os.environ]
    for key in added:
        os.environ[key] = HTTP_DEFAULTS[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
