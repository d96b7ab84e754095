"""fetch@<ds>: put the dataset's archive, exactly as its source ships it, at data/raw/<ds>.zip.

    python -m stages.fetch chest_xray
"""

from __future__ import annotations

from pathlib import Path

from stages import sources, synthetic
from stages.atomic import atomic_file
from stages.cli import run_stage
from stages.config import DatasetSpec, FetchSettings, Params, dataset_file
from stages.errors import PipelineError
from stages.paths import raw_archive


def fetch(dataset: DatasetSpec, settings: FetchSettings, destination: Path) -> str:
    """Write the archive to `destination` atomically; return what was done, for the log."""
    with atomic_file(destination) as temporary:
        if settings.source == "synthetic":
            if dataset.synthetic is None:
                raise PipelineError(
                    f"{dataset_file(dataset.name)} has no synthetic section; use fetch.source=path (or kaggle) for {dataset.name}"
                )
            count = synthetic.write_archive(dataset, settings.synthetic, temporary)
            return f"generated a synthetic archive ({count} members)"
        if settings.source == "path":
            return sources.copy_local(dataset, settings.paths.get(dataset.name), temporary)
        return sources.download_kaggle(dataset, temporary)


def main(params: Params, dataset: DatasetSpec) -> None:
    destination = raw_archive(dataset.name)
    done = fetch(dataset, params.fetch, destination)
    print(f"fetch {dataset.name}: {done} -> {destination}")


if __name__ == "__main__":
    run_stage("fetch", main, __doc__)
