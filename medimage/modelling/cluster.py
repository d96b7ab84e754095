"""Where this process stands in a TensorFlow cluster (train.distribute: multi_worker), read from TF_CONFIG.

TF_CONFIG is TensorFlow's standard cluster spec, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]},
"task": {"type": "worker", "index": 0}}. Worker 0 (or a task of type "chief") is the chief: only it
writes the model, the curves and the metrics. No TensorFlow here.
"""

from __future__ import annotations

import json
import os

from medimage.errors import PipelineError


def tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise PipelineError(
            "train.distribute is multi_worker but TF_CONFIG is not set; "
            "set it on every worker (see docs/collaboration.md, 'Training on several machines')"
        )
    try:
        config = json.loads(raw)
        config["cluster"], config["task"]["type"], config["task"]["index"]  # noqa: B018 - the keys TensorFlow needs
    except (ValueError, KeyError, TypeError) as error:
        raise PipelineError(
            f"TF_CONFIG is not a TensorFlow cluster spec ({error!r}): it needs cluster and task.type/task.index"
        ) from None
    return config


def is_chief(distribute: str) -> bool:
    if distribute != "multi_worker":
        return True
    task = tf_config()["task"]
    return task["type"] == "chief" or (
        task["type"] == "worker" and int(task["index"]) == 0 and "chief" not in tf_config()["cluster"]
    )


def task_name(distribute: str) -> str:
    """'chief' or 'worker<N>': names this process's own backup folder."""
    if is_chief(distribute):
        return "chief"
    return f"{tf_config()['task']['type']}{tf_config()['task']['index']}"
