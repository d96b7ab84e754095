"""Add a dataset: inspect an archive, a folder or a Kaggle handle and write datasets/NAME.yaml with its evidence.

Only the member list and the small tables are read (no extraction, the archive checks restructure makes). It
decides folder- or table-labelled, the splits, what to ignore and why, the label table's columns and a patient
id rule, then adds NAME to params.yaml (with the local path in fetch.paths) and its model to dvc.yaml's
artifacts, so that `dvc repro` runs the new dataset with no other edit. Ambiguous choices stop with the
candidates and the option that names one.

    python -m stages.add ham10000 ~/Downloads/skin-cancer-mnist-ham10000.zip
    python -m stages.add aptos ~/Downloads/aptos2019-blindness-detection.zip --label-column diagnosis
    python -m stages.add nih_cxr nih-chest-xrays/data/versions/3
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from medimage.adding import ARCHIVE_SPLITS, entry_path, propose, registration, render, write_together
from medimage.archives.inspection import Listing, list_archive, list_folder
from medimage.archives.reading import Limits
from medimage.archives.sources import kaggle_folder
from medimage.atomic import sweep_leftovers
from medimage.errors import PipelineError
from medimage.settings.files import dataset_name_problem
from medimage.settings.project import load_params

KAGGLE_HANDLE = re.compile(r"^[\w.-]+/[\w.-]+(/versions/\d+)?$")


def open_source(source: str, kaggle: str | None, limits: Limits) -> tuple[Listing, dict, Path | None]:
    """The listing, the registry's origin keys (kaggle, archive, fetch) and the local path to record, if any."""
    path = Path(source).expanduser()
    if path.is_file():
        return list_archive(path, limits), {"kaggle": kaggle, "archive": path.name, "fetch": "path"}, path.resolve()
    if path.is_dir():
        return (
            list_folder(path, limits),
            {"kaggle": kaggle, "archive": f"{path.name}.zip", "fetch": "path"},
            path.resolve(),
        )
    if not KAGGLE_HANDLE.match(source):
        raise PipelineError(f"{source} is not a file, a folder or a Kaggle handle (owner/slug/versions/N)")
    folder = kaggle_folder(source, source)
    pinned = source if "/versions/" in source else f"{source}/versions/{folder.name}"
    if not re.fullmatch(r"\d+", pinned.rsplit("/", 1)[1]):
        raise PipelineError(f"could not tell which version of {source} kagglehub gave; pass owner/slug/versions/N")
    slug = source.split("/")[1]
    return list_folder(folder, limits), {"kaggle": kaggle or pinned, "archive": f"{slug}.zip", "fetch": "kaggle"}, None


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stages.add", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the dataset's name: lower-case letters, digits and _")
    parser.add_argument("source", help="a .zip archive, an unzipped folder, or a Kaggle handle owner/slug[/versions/N]")
    parser.add_argument("--label-column", help="take labels from this column of the archive's label table")
    parser.add_argument("--group-column", help="the table's patient or lesion id column (images kept in one split)")
    parser.add_argument("--table", help="the label table's member path, where several tables could label the images")
    parser.add_argument(
        "--multi-label", action="store_true", help="read several labels per image, even where few rows give several"
    )
    parser.add_argument("--kaggle", help="the Kaggle handle owner/slug/versions/N the local archive came from")
    parser.add_argument("--encoding", default="utf-8", help="the tables' text encoding, where not UTF-8 (e.g. cp1252)")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing datasets/NAME.yaml (not a shipped one)"
    )
    parser.add_argument("--replace-default", metavar="NAME", help="replace NAME, a dataset the project ships")
    parser.add_argument("--dry-run", action="store_true", help="print the entry; write and register nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    root = Path(".")
    texts: dict[Path, str] = {}
    try:
        sweep_leftovers()  # finishes an add that was killed while writing its three files
        problem = dataset_name_problem(args.name)
        if problem:
            raise PipelineError(problem)
        params = load_params(root)
        listing, origin, local_path = open_source(args.source, args.kaggle, Limits.from_settings(params.restructure))
        proposal = propose(
            args.name,
            listing,
            origin,
            args.label_column,
            args.group_column,
            args.table,
            args.encoding,
            args.multi_label,
        )
        command = "python -m stages.add " + " ".join(shlex.quote(word) for word in (argv or sys.argv[1:]))
        text = render(proposal, command)
        if args.dry_run:
            print(text, end="")
            return
        path = entry_path(root, args.name, args.force, args.replace_default)
        description = f"{args.name} classifier (datasets/{args.name}.yaml)"
        texts = {path: text} | registration(root, args.name, local_path, description)
        write_together(texts)
    except PipelineError as error:
        print(f"add: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # held back while the files are renamed: they are all new or all as they were
        done = bool(texts) and all(file.read_text(encoding="utf-8") == new for file, new in texts.items())
        state = f"{args.name} was added all the same" if done else "datasets/, params.yaml and dvc.yaml are unchanged"
        print(f"add: interrupted; {state}", file=sys.stderr)
        sys.exit(130)
    print(f"wrote {path}: {proposal.evidence[0]}")
    print("\n".join(line for line in proposal.evidence if line.startswith(("  ", ARCHIVE_SPLITS))))
    print(f"added {args.name} to params.yaml and dvc.yaml; run: dvc repro evaluate@{args.name}")


if __name__ == "__main__":
    main()
