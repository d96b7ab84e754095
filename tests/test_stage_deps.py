"""Every stage's `deps:` in dvc.yaml are exactly the project modules its command imports, transitively.

The closure is computed from the source with `ast` (imports inside functions count: they run on some path),
so a code change reruns every stage it can affect and no other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from harness.project import ROOT

PACKAGES = ("stages", "medimage")


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name an import in `path` may load: `a.b` and, for `from a import b`, also `a.b`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_closure(module: str) -> set[str]:
    """Project files (relative, posix) that importing `module` loads, its packages' non-empty __init__.py included."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        parts = name.split(".")
        if parts[0] not in PACKAGES:
            continue
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            prefix = ".".join(parts[:depth])
            path = module_file(prefix)
            if path is None:
                continue
            relative = path.relative_to(ROOT).as_posix()
            if relative in seen:
                continue
            seen.add(relative)
            pending.extend(imported_names(path, prefix))
    return {path for path in seen if not (path.endswith("__init__.py") and not (ROOT / path).read_text().strip())}


def stage_modules() -> dict[str, tuple[str, list[str]]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    found = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        words = body["cmd"].split()
        module = words[words.index("-m") + 1]
        code_deps = [dep for dep in body.get("deps", []) if isinstance(dep, str) and dep.endswith(".py")]
        found[name] = (module, code_deps)
    return found


@pytest.mark.parametrize("stage", sorted(stage_modules()))
def test_deps_are_the_import_closure(stage: str) -> None:
    module, deps = stage_modules()[stage]
    closure = import_closure(module)
    missing = sorted(closure - set(deps))
    extra = sorted(set(deps) - closure)
    assert not missing, f"dvc.yaml stage {stage}: {module} imports {missing}, which are not in its deps"
    assert not extra, f"dvc.yaml stage {stage}: deps {extra} are not imported by {module} (or no longer exist)"


def test_the_closure_follows_imports_inside_functions() -> None:
    closure = import_closure("stages.train")
    assert "medimage/modelling/fitting.py" in closure  # imported only inside main(), for the Keras models
    assert "medimage/settings/train.py" in closure
    assert "stages/evaluate.py" not in closure


SETTINGS_READ = {  # the settings modules each stage may depend on: its own concern's and those it reads
    "fetch": {"fetch"},
    "restructure": {"restructure"},
    "split": {"split"},
    "pixels": {"split", "train"},  # split.link: how a missing view is rebuilt; train.image_size
    "train": {"split", "train"},  # the dataset's split entry names it
    "evaluate": {"split", "train", "evaluate"},
}


@pytest.mark.parametrize("stage", sorted(SETTINGS_READ))
def test_a_stage_depends_on_the_settings_it_reads_only(stage: str) -> None:
    """Editing one concern's schema (a comment of SyntheticSpec, say) must not rerun the other stages."""
    closure = import_closure(stage_modules()[stage][0])
    settings = {Path(path).stem for path in closure if path.startswith("medimage/settings/")}
    assert settings == SETTINGS_READ[stage] | {"files"}


def test_evaluate_depends_on_no_training_code() -> None:
    closure = import_closure("stages.evaluate")
    training = {"fitting", "distributed", "architectures", "resume", "cluster", "training"}
    assert not {Path(path).stem for path in closure if path.startswith("medimage/modelling/")} & training


# --------------------------------------------------------------------------- docs/reruns.md

RERUNS_DOC = ROOT / "docs" / "reruns.md"
TABLE_START, TABLE_END = "<!-- reruns: start -->", "<!-- reruns: end -->"


def coarse_dep(path: str) -> str:
    """The dep a folder-level dvc.yaml would list for `path`: its subpackage folder, or the file at the top."""
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else path


def rerun_table() -> str:
    """Per project module, the stages a change to it reruns: with the import closure as deps (dvc.yaml), and with
    one dep per subpackage folder (the coarser alternative)."""
    stages = {name: import_closure(module) for name, (module, _) in stage_modules().items()}
    modules = sorted(set().union(*stages.values()))
    lines = [
        "| module | reruns (deps: the import closure) | reruns (deps: one per folder) |",
        "|---|---|---|",
    ]
    totals = [0, 0]
    for module in modules:
        exact = [name for name, closure in stages.items() if module in closure]
        coarse = [name for name, closure in stages.items() if coarse_dep(module) in map(coarse_dep, closure)]
        totals = [totals[0] + len(exact), totals[1] + len(coarse)]
        lines.append(f"| `{module}` | {', '.join(exact)} | {', '.join(coarse)} |")
    lines.append(f"| **stages rerun, summed over the {len(modules)} modules** | {totals[0]} | {totals[1]} |")
    return "\n".join(lines)


def test_the_rerun_table_in_the_docs_is_current() -> None:
    text = RERUNS_DOC.read_text(encoding="utf-8")
    shown = text.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    assert shown == rerun_table(), f"{RERUNS_DOC.name} is stale: run python -m tests.test_stage_deps"


if __name__ == "__main__":
    text = RERUNS_DOC.read_text(encoding="utf-8")
    before, rest = text.split(TABLE_START)
    RERUNS_DOC.write_text(f"{before}{TABLE_START}\n{rerun_table()}\n{TABLE_END}{rest.split(TABLE_END)[1]}")
