"""The README stays short and true: its scores are the committed eval.json, every file it names exists, its code map
names every module, and its counts are the pipeline's."""

from __future__ import annotations

import json
import re

import yaml

from harness.project import DEFAULT_DATASETS, ROOT

README = ROOT / "README.md"


def score_table() -> str:
    """The README table as the committed metrics/<dataset>/eval.json files give it."""
    lines = [
        "| dataset | threshold | accuracy | balanced accuracy | ROC AUC (95 % CI) | sensitivity | specificity |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in DEFAULT_DATASETS:
        scores = json.loads((ROOT / "metrics" / name / "eval.json").read_text())
        threshold = "argmax" if scores["threshold"] is None else scores["threshold"]
        auc = f"{scores['roc_auc']} ({scores['roc_auc_ci_low']}-{scores['roc_auc_ci_high']})"
        cells = [name, threshold, scores["accuracy"], scores["balanced_accuracy"], auc]
        lines.append(
            "| " + " | ".join(str(cell) for cell in [*cells, scores["sensitivity"], scores["specificity"]]) + " |"
        )
    return "\n".join(lines)


def test_the_readme_quotes_the_committed_test_scores() -> None:
    assert readme_block("eval.json") == score_table(), f"update the README's table to:\n{score_table()}"


def readme_block(name: str, text: str | None = None) -> str:
    """The text between `<!-- name: start -->` and `<!-- name: end -->` of the README (or of `text`)."""
    found = re.search(rf"<!-- {name}: start -->\n(.*?)\n<!-- {name}: end -->", text or README.read_text(), re.DOTALL)
    assert found is not None, f"lost its block <!-- {name}: start --> ... <!-- {name}: end -->"
    return found.group(1)


def test_the_readme_is_short_and_every_file_it_names_exists() -> None:
    readme = README.read_text()
    assert len(readme.splitlines()) <= 150, "the README is the way in: move detail to docs/"
    linked = re.findall(r"\]\(([^)#]+)\)", readme)
    named = [path for path in re.findall(r"`([\w./-]+)`", readme) if "/" in path and not path.startswith("-")]
    missing = [path for path in linked + named if not (ROOT / path.rstrip("/")).exists()]
    assert not missing, f"the README names files that do not exist: {missing}"
    for document in sorted((ROOT / "docs").glob("*.md")):
        gone = [
            path
            for path in re.findall(r"\]\(([^)#:]+)\)", document.read_text())
            if not (document.parent / path).exists()
        ]
        assert not gone, f"{document.name} links to files that do not exist: {gone}"


def test_the_code_map_names_every_module_in_its_folder() -> None:
    """Each folder's paragraph of the code map names every module in it, and only those."""
    paragraphs: dict[str, str] = {}
    folder = ""
    for line in readme_block("code map").strip("`\n").splitlines():
        if not line.startswith(" "):
            folder = line.split()[0]
        paragraphs[folder] = paragraphs.get(folder, "") + " " + line
    for folder in (
        "stages/",
        "medimage/",
        *(
            f"medimage/{path.name}/"
            for path in sorted((ROOT / "medimage").iterdir())
            if path.is_dir() and (path / "__init__.py").exists()
        ),
    ):
        modules = {path.stem for path in (ROOT / folder).glob("*.py") if path.stem != "__init__"}
        words = set(re.findall(r"\b\w+\b", paragraphs.get(folder, "")))
        assert modules <= words, f"the README's code map leaves out {sorted(modules - words)} of {folder}"


def test_the_readme_claims_match_the_pipeline() -> None:
    """The default datasets, the stages of the outputs table and the count of headline keys."""
    readme = README.read_text()
    defaults = re.search(r"The default run: (.*?), each from", readme, re.DOTALL)
    assert defaults is not None
    assert re.findall(r"`(\w+)`", defaults.group(1)) == DEFAULT_DATASETS
    stages = re.findall(r"^\| `(\w+)` \|", readme, re.MULTILINE)
    assert stages == list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    keys = re.search(r"\((\d+) headline keys, the same for every dataset\)", readme)
    assert keys is not None
    for name in DEFAULT_DATASETS:
        assert len(json.loads((ROOT / "metrics" / name / "eval.json").read_text())) == int(keys.group(1))


def test_the_audit_quoted_in_the_docs_is_the_committed_one() -> None:
    from medimage.settings.split import SplitSettings
    from medimage.splitting.audit import audit_table

    metrics = json.loads((ROOT / "metrics" / "chest_xray" / "split.json").read_text())
    metrics["counts"] = json.loads((ROOT / "metrics" / "chest_xray" / "split_report.json").read_text())["counts"]
    quoted = readme_block("audit", (ROOT / "docs" / "splitting.md").read_text())
    assert quoted == f"```\n{audit_table('chest_xray', SplitSettings(), metrics)}\n```"
