"""The README quotes no stale numbers: its table of the default run's test scores is the committed eval.json."""

from __future__ import annotations

import json
import re

from harness.project import DEFAULT_DATASETS, ROOT


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
    readme = (ROOT / "README.md").read_text()
    quoted = re.search(r"<!-- eval.json: start -->\n(.*?)\n<!-- eval.json: end -->", readme, re.DOTALL)
    assert quoted is not None, "README.md lost its table of the default run's test scores"
    assert quoted.group(1) == score_table(), f"update the README's table to:\n{score_table()}"
    assert "about 4.5" not in readme and "0.94 (chest X-ray)" not in readme
