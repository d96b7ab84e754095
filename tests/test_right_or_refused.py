"""Every archive is restructured right or refused in one line: nothing lost, nothing merged, nothing half-written.

Each test here failed on the code before it was written: a label named like a temporary was deleted
by the next stage, a split called Originals vanished into originals/, a latin-1 table merged two classes, look-alike
labels became one folder on some file systems, a killed `add` left a half-registered dataset.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from harness.project import ROOT, environment, make_project, run_in
from medimage import manifest
from medimage.archives.unpacking import restructure
from medimage.errors import PipelineError
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import RestructureSettings
from tests.samples import TOY, png_bytes, write_zip

SETTINGS = RestructureSettings()


def images(labels: list[str], per_label: int = 6, root: str = "cells") -> dict[str, bytes]:
    return {
        f"{root}/{label}/{n}.png": png_bytes(value=(40 * index + 7 * n) % 250)
        for index, label in enumerate(labels)
        for n in range(per_label)
    }


def add(project: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_in(project, sys.executable, "-m", "stages.add", *arguments, check=check)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --------------------------------------------------------------------------- 1a: names like temporaries


def test_labels_named_like_temporaries_survive_every_later_stage(tmp_path: Path) -> None:
    """`.tmp-cells` (and a name exactly of the old temporary form) is a label like any other: restructure keeps it,
    and the sweep at the start of split and of every later stage leaves it alone."""
    labels = [".tmp-cells", ".tmp-build-p1-0a1b2c3d", "plain"]
    archive = write_zip(tmp_path / "cells.zip", images(labels))
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"]})
    add(project, "cells", str(archive))
    run_in(project, "dvc", "repro", "split@cells")
    run_in(project, sys.executable, "-m", "stages.view", "cells")  # one more stage start, one more sweep
    interim = manifest.read_interim(project / "data" / "interim" / "cells")
    processed = manifest.read_processed(project / "data" / "processed" / "cells")
    assert sorted({row.label for row in processed}) == sorted(labels)
    assert len(processed) == len(interim) == 18
    assert all((project / "data" / "interim" / "cells" / row.path).is_file() for row in interim)
    assert all((project / "data" / "processed" / "cells" / row.path).is_file() for row in processed)
    assert "Data and pipelines are up to date" in run_in(project, "dvc", "status", "split@cells").stdout


# --------------------------------------------------------------------------- 1b: names restructure writes itself


@pytest.mark.parametrize("split", ["Originals", "ORIGINALS", "Manifest.csv", "skipped.csv"])
def test_a_split_named_like_restructures_own_files_is_refused_not_swallowed(tmp_path: Path, split: str) -> None:
    members = images(["a", "b"], root=f"root/{split}") | images(["a", "b"], root="root/train")
    with pytest.raises(PipelineError, match=rf"archive split '{split.lower()}' takes the name of .*rename the split"):
        restructure(write_zip(tmp_path / "toy.zip", members), TOY, SETTINGS, tmp_path / "interim")
    assert not (tmp_path / "interim").exists()
    mapped = TOY.model_copy(update={"split_map": {split: "extra"}})
    metrics = restructure(tmp_path / "toy.zip", mapped, SETTINGS, tmp_path / "interim")
    assert metrics["images"] == 24 and set(metrics["counts"]) == {"extra", "train"}


# --------------------------------------------------------------------------- 1c: table encodings


def latin1_archive(path: Path) -> Path:
    members = {f"img/{n}.png": png_bytes(value=20 * n) for n in range(8)}
    rows = "".join(f"{n},{('bénin', 'bènin')[n % 2]}\n" for n in range(8))
    members["labels.csv"] = ("id,dx\n" + rows).encode("latin-1")
    return write_zip(path, members)


def table_entry(**update: object) -> DatasetSpec:
    labels = {"table": "labels.csv", "id_column": "id", "label_column": "dx", **update}
    return DatasetSpec.model_validate({**TOY.model_dump(), "layout": ["img/{file}"], "labels": labels})


def test_a_table_that_is_not_utf8_stops_naming_the_offset_and_the_option(tmp_path: Path) -> None:
    archive = latin1_archive(tmp_path / "t.zip")
    with pytest.raises(PipelineError, match=r"is not utf-8 text: byte 0xe9 at offset 9 .*labels\.encoding"):
        restructure(archive, table_entry(), SETTINGS, tmp_path / "i")
    restructure(archive, table_entry(encoding="latin-1"), SETTINGS, tmp_path / "i")
    labels = {row.path.rsplit("/", 1)[1]: row.label for row in manifest.read_interim(tmp_path / "i")}
    assert labels == {f"{n}.png": ("bénin", "bènin")[n % 2] for n in range(8)}


def test_add_names_the_encoding_option_and_writes_the_encoding_it_was_given(tmp_path: Path) -> None:
    archive = latin1_archive(tmp_path / "t.zip")
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"]})
    line = one_line_error(add(project, "derm", str(archive), check=False))
    assert "is not utf-8 text: byte 0xe9 at offset 9" in line and "--encoding" in line
    add(project, "derm", str(archive), "--encoding", "latin-1")
    entry = yaml.safe_load((project / "datasets" / "derm.yaml").read_text())
    assert entry["labels"]["encoding"] == "latin-1"
    assert "bénin 4" in (project / "datasets" / "derm.yaml").read_text()


def test_a_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    members = {f"img/{n}.png": png_bytes(value=20 * n) for n in range(4)}
    members["labels.csv"] = "\ufeffid,dx\n0,a\n1,b\n2,a\n3,b\n".encode()
    restructure(write_zip(tmp_path / "t.zip", members), table_entry(), SETTINGS, tmp_path / "i")
    assert len(manifest.read_interim(tmp_path / "i")) == 4


# --------------------------------------------------------------------------- 1d: look-alike labels


@pytest.mark.parametrize(
    "first, second",
    [
        (unicodedata.normalize("NFC", "bénin"), unicodedata.normalize("NFD", "bénin")),
        ("Ａ", "A"),  # full width
        ("cat\u200b", "cat"),  # zero-width space
        ("Cat", "cat"),
    ],
)
def test_labels_that_look_alike_are_refused_naming_both_spellings(tmp_path: Path, first: str, second: str) -> None:
    members = images([first, second], root="root/train")
    with pytest.raises(PipelineError) as refused:
        restructure(write_zip(tmp_path / "toy.zip", members), TOY, SETTINGS, tmp_path / "interim")
    message = str(refused.value)
    assert ascii(first) in message and ascii(second) in message and "differ only by" in message
    assert not (tmp_path / "interim").exists()


def test_a_decomposed_label_is_written_composed(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "bénin")
    members = images([decomposed, "malin"], root="root/train")
    restructure(write_zip(tmp_path / "toy.zip", members), TOY, SETTINGS, tmp_path / "interim")
    labels = {row.label for row in manifest.read_interim(tmp_path / "interim")}
    assert labels == {unicodedata.normalize("NFC", "bénin"), "malin"}
    assert (tmp_path / "interim" / "train" / unicodedata.normalize("NFC", "bénin")).is_dir()


# --------------------------------------------------------------------------- 5: add as one transaction

KILL_AT_SECOND_RENAME = """
import os, signal, sys
renames = []
real = os.replace
def replace(source, target):
    real(source, target)
    renames.append(target)
    if len(renames) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
from stages import add
add.main(sys.argv[1:])
"""


def test_add_killed_between_its_writes_is_finished_by_the_next_command(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "cells.zip", images(["a", "b"]))
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"]})
    before = {name: (project / name).read_text() for name in ("params.yaml", "dvc.yaml")}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT_SECOND_RENAME, "cells", str(archive)],
        cwd=project,
        env=environment(project),
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL
    changed = [name for name in before if (project / name).read_text() != before[name]]
    changed += ["datasets/cells.yaml"] if (project / "datasets" / "cells.yaml").exists() else []
    assert len(changed) == 2, changed  # half-registered, as a kill leaves it
    again = add(project, "cells", str(archive), check=False)  # finishes the first, then refuses a second
    assert one_line_error(again).endswith("datasets/cells.yaml exists; pass --force to replace it")
    assert "cells" in yaml.safe_load((project / "params.yaml").read_text())["datasets"]
    assert "cells-classifier" in yaml.safe_load((project / "dvc.yaml").read_text())["artifacts"]
    assert not list(project.glob(".tmp-*")) and not list((project / "datasets").glob(".tmp-*"))
    assert list((project / ".cache" / "temporaries").iterdir()) == []
    run_in(project, "dvc", "repro", "restructure@cells")


INTERRUPT_WHILE_INSPECTING = """
import sys
from medimage import adding
def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
adding.render = interrupted
from stages import add
add.render = interrupted
add.main(sys.argv[1:])
"""


def test_add_interrupted_prints_one_line_and_changes_nothing(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "cells.zip", images(["a", "b"]))
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"]})
    interrupted = subprocess.run(
        [sys.executable, "-c", INTERRUPT_WHILE_INSPECTING, "cells", str(archive)],
        cwd=project,
        env=environment(project),
        capture_output=True,
        text=True,
    )
    assert interrupted.returncode == 130
    assert one_line_error(interrupted) == "add: interrupted; datasets/, params.yaml and dvc.yaml are unchanged"
    assert run_in(project, "git", "status", "--porcelain", "--untracked-files=all").stdout == ""


def test_force_does_not_replace_a_shipped_dataset_unless_named(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "cells.zip", images(["NORMAL", "PNEUMONIA"]))
    project = make_project(tmp_path / "project")
    shipped = (project / "datasets" / "chest_xray.yaml").read_text()
    line = one_line_error(add(project, "chest_xray", str(archive), "--force", check=False))
    assert "--force does not replace it; pass --replace-default chest_xray" in line
    line = one_line_error(add(project, "chest_xray", str(archive), "--replace-default", "covid19", check=False))
    assert line.endswith("datasets/chest_xray.yaml exists; pass --force to replace it")
    assert (project / "datasets" / "chest_xray.yaml").read_text() == shipped
    add(project, "chest_xray", str(archive), "--replace-default", "chest_xray")
    assert "synthetic: null" in (project / "datasets" / "chest_xray.yaml").read_text()
    add(project, "mine", str(archive))
    add(project, "mine", str(archive), "--force")  # an entry add wrote: --force is enough


@pytest.mark.parametrize("name", ["yes", "no", "on", "off", "null", "true", "1e3", "0x1f", "017", "1_000"])
def test_dataset_names_that_yaml_reads_as_something_else_are_refused(tmp_path: Path, name: str) -> None:
    from medimage.settings.files import dataset_name_problem

    assert f"dataset name {name!r} reads as" in (dataset_name_problem(name) or "")
    assert dataset_name_problem(f"{name}_set") is None


def test_a_refused_name_and_a_long_name_are_one_line_from_add(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "cells.zip", images(["a", "b"]))
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"]})
    assert "reads as True in YAML 1.1" in one_line_error(add(project, "yes", str(archive), check=False))
    assert "over the limit of 64" in one_line_error(add(project, "a" * 65, str(archive), check=False))
    assert run_in(project, "git", "status", "--porcelain").stdout == ""


def test_params_listing_a_name_yaml_reads_otherwise_is_an_error_naming_the_key(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray", "1e3"]})
    line = one_line_error(run_in(project, sys.executable, "-m", "stages.fetch", "chest_xray", check=False))
    assert "invalid params.yaml: datasets: dataset name '1e3' reads as 1000.0 in YAML 1.2 (DVC)" in line


def test_the_project_ships_no_name_that_the_check_refuses() -> None:
    from medimage.settings.files import dataset_name_problem

    names = [*yaml.safe_load((ROOT / "params.yaml").read_text())["datasets"], "ham10000"]
    assert [name for name in names if dataset_name_problem(name)] == []


# --------------------------------------------------------------------------- 7: make clean


def test_make_clean_removes_only_what_git_does_not_track(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    for name in ("Makefile", "plots/chest_xray/.gitignore", "reports/.gitignore"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, project / name)
    made_files = ("data/raw/x.zip", "models/chest_xray/model.keras", "plots/chest_xray/gradcam.png")
    for made in (*made_files, "reports/chest_xray.html"):
        (project / made).parent.mkdir(parents=True, exist_ok=True)
        (project / made).write_bytes(b"made")
    git_add = ["metrics/chest_xray/eval.json", "plots/chest_xray/roc.csv", "dvc.lock", "notes/mine.txt"]
    for tracked in git_add:
        (project / tracked).parent.mkdir(parents=True, exist_ok=True)
        (project / tracked).write_text("tracked\n")
    run_in(project, "git", "add", "Makefile", "plots", "reports/.gitignore", *git_add)
    run_in(project, "git", "commit", "-q", "-m", "outputs")
    run_in(project, "make", "clean")
    assert run_in(project, "git", "status", "--porcelain").stdout == ""  # every tracked file as committed
    assert all((project / tracked).read_text() == "tracked\n" for tracked in git_add)
    assert not any((project / made).exists() for made in ("data", "models", "plots/chest_xray/gradcam.png"))
    assert not (project / "reports" / "a.html").exists()


# --------------------------------------------------------------------------- 6: hostile input, one line each


def test_a_workbook_whose_parts_inflate_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    from medimage.archives.tables import parse_table

    sheet = b"<row>" + b" " * (8 * 1024 * 1024) + b"</row>"  # 8 MB of XML inflated from a few KB
    workbook = write_zip(
        tmp_path / "data.xlsx", {"[Content_Types].xml": b"<Types/>", "xl/worksheets/sheet1.xml": sheet}
    )
    workbook = workbook.read_bytes()
    with pytest.raises(PipelineError, match=r"table 'data.xlsx': member 'xl/worksheets/sheet1.xml' expands .*x"):
        parse_table("data.xlsx", workbook)


def test_a_csv_field_past_the_limit_is_one_line(tmp_path: Path) -> None:
    members = {f"img/{n}.png": png_bytes(value=20 * n) for n in range(4)}
    members["labels.csv"] = b'id,dx\n0,a\n1,"' + b"b" * 200_000 + b'"\n2,a\n3,b\n'
    with pytest.raises(PipelineError, match=r"table 'labels.csv' cannot be read at line 3: field larger than"):
        restructure(write_zip(tmp_path / "t.zip", members), table_entry(), SETTINGS, tmp_path / "i")


@pytest.mark.parametrize("label", ["line\u2028break", "next\u0085line", "tab\there"])
def test_a_label_holding_a_line_break_or_a_control_character_is_refused(tmp_path: Path, label: str) -> None:
    members = images([label, "plain"], root="root/train")
    with pytest.raises(PipelineError, match=r"holds a control character or a line break"):
        restructure(write_zip(tmp_path / "toy.zip", members), TOY, SETTINGS, tmp_path / "interim")


def test_folders_named_like_pattern_placeholders_are_taken_literally_by_add(tmp_path: Path) -> None:
    from medimage.adding import propose, render
    from medimage.archives.inspection import list_archive
    from medimage.archives.reading import Limits

    members = images(["cat", "dog"], root="a*b/{split}/{label}") | {"[copy]/x.txt": b"a note"}
    archive = write_zip(tmp_path / "braces.zip", members)
    listing = list_archive(archive, Limits.from_settings(SETTINGS))
    origin = {"kaggle": None, "archive": "braces.zip", "fetch": "path"}
    entry = DatasetSpec.model_validate(
        {"name": "braces", **yaml.safe_load(render(propose("braces", listing, origin), "t"))}
    )
    restructure(archive, entry, SETTINGS, tmp_path / "interim")
    rows = manifest.read_interim(tmp_path / "interim")
    assert len(rows) == 12 and {row.label for row in rows} == {"cat", "dog"}
    assert {row.member.rsplit("/", 2)[0] for row in rows} == {"a*b/{split}/{label}"}


@pytest.mark.parametrize("key", ["split.seed", "train.seed", "evaluate.seed", "fetch.seed"])
def test_seeds_of_32_bits_and_more_are_params_errors(tmp_path: Path, key: str) -> None:
    section, name = key.split(".")
    update = {section: {"synthetic": {name: 2**32}}} if section == "fetch" else {section: {name: 2**32}}
    project = make_project(tmp_path / "project", update)
    stage_of = {"split": "split", "train": "train", "evaluate": "evaluate", "fetch": "fetch"}[section]
    line = one_line_error(run_in(project, sys.executable, "-m", f"stages.{stage_of}", "chest_xray", check=False))
    assert "seed: Input should be less than 4294967296" in line and "params.yaml" in line


def test_a_run_whose_json_is_corrupt_is_one_line_in_compare() -> None:
    from medimage.reporting.runs import load_run

    with pytest.raises(PipelineError, match=r"is not readable JSON in that run \(JSONDecodeError"):
        load_run(lambda path: b"{" if path.endswith(".json") else None, "chest_xray", "HEAD", {})


@pytest.mark.parametrize(
    "cell, written",
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("@cmd", "'@cmd"),
        ("-2+3", "-2+3"),
        ("-x", "'-x"),
        ("-0.5", "-0.5"),
        ("plain", "plain"),
        (0.25, "0.25"),
    ],
)
def test_spreadsheet_csvs_neutralise_formulas(tmp_path: Path, cell: object, written: str) -> None:
    from medimage.atomic import write_csv

    write_csv(tmp_path / "s.csv", ["cell"], [{"cell": cell}], spreadsheet=True)
    write_csv(tmp_path / "m.csv", ["cell"], [{"cell": cell}])
    assert (tmp_path / "s.csv").read_text().splitlines()[1] == written
    assert (tmp_path / "m.csv").read_text().splitlines()[1] == str(cell)  # manifests read back stay raw


def test_a_label_table_cell_like_a_formula_reaches_metadata_csv_neutralised_and_evaluate_still_finds_it(
    tmp_path: Path,
) -> None:
    members = {f"img/{n}.png": png_bytes(value=20 * n) for n in range(4)}
    members["labels.csv"] = b"id,dx,site\n0,a,=HYPERLINK(1)\n1,b,back\n2,a,back\n3,b,back\n"
    restructure(write_zip(tmp_path / "t.zip", members), table_entry(metadata=["site"]), SETTINGS, tmp_path / "i")
    assert "'=HYPERLINK(1)" in (tmp_path / "i" / "metadata.csv").read_text()
    assert {row["site"] for row in manifest.read_metadata(tmp_path / "i").values()} == {"'=HYPERLINK(1)", "back"}


def test_a_decomposed_table_label_keeps_its_metadata_row(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "bénin")
    members = {f"img/{n}.png": png_bytes(value=20 * n) for n in range(4)}
    members["labels.csv"] = f"id,dx,site\n0,{decomposed},back\n1,malin,face\n2,{decomposed},arm\n3,malin,leg\n".encode()
    restructure(write_zip(tmp_path / "t.zip", members), table_entry(metadata=["site"]), SETTINGS, tmp_path / "i")
    paths = {row.path for row in manifest.read_interim(tmp_path / "i")}
    assert set(manifest.read_metadata(tmp_path / "i")) == paths  # every image's metadata row, under its NFC path
