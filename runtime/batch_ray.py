"""The Ray engine of `netc batch`: Ray Data maps the pending units over a pool of actors,
each holding one onnxruntime session, and each actor writes its units' Parquet files.

Why units rather than `read_parquet -> map_batches -> write_parquet`: Ray's writer names
its files itself and cannot tell a re-run which rows are done, so resuming would mean
reading every file back. A unit is written atomically under a name fixed by the plan, so a
retried unit (Ray Data restarts an actor killed mid-run and retries its task, without limit
by default) rewrites the same
file, and a re-run skips what is there: nothing lost, nothing twice.

Sizing (2 CPUs measured): actors that ask for whole CPUs can take every CPU and leave Ray
Data's own tasks none, and the job then hangs without a word; the actors here ask for a
fraction that always leaves one CPU free.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from netc.dsl.errors import NetcInputError, first_line
from netc.runtime.batch import Plan, Progress, Unit, run_unit


class UnitRunner:
    """A Ray Data callable class: one session per actor, one unit per row of the batch."""

    def __init__(self, model: list, plan: Plan, threads: int):
        import onnx
        import ray

        from netc.runtime.session import make_session

        model_bytes = ray.get(model[0])  # a reference inside a list: fetched here, not by Ray

        self.session = make_session(onnx.load_model_from_string(model_bytes), "cpu", threads)
        self.plan = plan

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from netc.boundary import translate

        units = [self.plan.units[int(i)] for i in batch["unit"]]
        try:
            rows = [run_unit(self.session, self.plan, u) for u in units]
        except Exception as err:
            # A task's exception reaches the driver without its cause (Ray Data wraps it in a
            # UserCodeException), so a user's mistake travels back as data and is raised there.
            found = translate(err)
            if found is None:
                raise
            problem = json.dumps({"message": found.message, "hints": [h for h in found.hints if h]})
            return {"unit": np.asarray(batch["unit"]), "rows": np.zeros(len(units), np.int64),
                    "error": np.asarray([problem] * len(units), dtype=object)}
        return {"unit": np.asarray(batch["unit"]), "rows": np.asarray(rows, dtype=np.int64),
                "error": np.asarray([""] * len(units), dtype=object)}


def actor_cpus(cluster_cpus: float, actors: int) -> float:
    """CPUs each actor reserves: an equal share of all but one CPU (at most 1, at least 1/8),
    so Ray Data's read and bookkeeping tasks always find a free CPU."""
    return max(0.125, min(1.0, (cluster_cpus - 1.0) / actors))


def run_ray(model_bytes: bytes, plan: Plan, todo: Sequence[Unit], actors: int, address: str | None,
            progress: Progress) -> None:
    try:
        import ray
        import ray.data
        from ray.data import ActorPoolStrategy
    except ImportError:
        raise NetcInputError("--engine ray needs Ray, which is not installed", None,
                             ["install the extra: pip install 'netc[ray]'"]) from None
    # Ray's core logs a warning for every actor pool whose class arguments sit in the
    # object store, as Ray Data's always do: not news to a user of this command.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            _check_reachable(address)
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            else:  # a local instance for this run only
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise NetcInputError(f"cannot start or reach {where}: {first_line(err, 300)}") from None
    progress.started = time.perf_counter()  # rows/s from here: without Ray's start-up
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        per_actor = actor_cpus(cpus, actors)
        threads = max(1, int(cpus // actors))
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        model_ref = ray.put(model_bytes)
        dataset = ray.data.from_items([{"unit": u.index} for u in todo], override_num_blocks=len(todo))
        results = dataset.map_batches(
            UnitRunner, fn_constructor_args=([model_ref], plan, threads), batch_size=1,
            compute=ActorPoolStrategy(size=actors), num_cpus=per_actor)
        for row in results.iter_rows():
            if row["error"]:
                problem = json.loads(row["error"])
                raise NetcInputError(problem["message"], None, problem["hints"])
            progress.advance(int(row["rows"]))
    except NetcInputError:
        raise
    except Exception as err:  # a unit's own NetcInputError arrives wrapped in Ray's error
        cause = _netc_cause(err)
        if cause is not None:
            raise cause from None
        raise
    finally:
        if started_here:
            ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a `host:port` nobody listens on (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # ray://..., auto, or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise NetcInputError(f"cannot reach the Ray cluster at {address}: {err.strerror or err}", None,
                             ["start one with `ray start --head`, or leave out --address for a local instance"]) \
            from None


def _netc_cause(err: BaseException) -> NetcInputError | None:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, NetcInputError):
            return err
        cause = getattr(err, "cause", None)
        err = cause if isinstance(cause, BaseException) else (err.__cause__ or err.__context__)
    print("netc: the Ray job failed", file=sys.stderr)
    return None
