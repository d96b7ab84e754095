"""The page template `dvc plots show` and `dvc plots diff` fill: Vega, Vega-Lite and Vega-Embed inline, so the
DVC-native view opens without internet too (DVC's own template loads them from a CDN).

.dvc/config names it (`plots.html_template`, relative to .dvc/); it is committed, and
`python -m medimage.reporting.dvc_template` writes it again from the pinned vl-convert (tests/test_report.py
checks the committed file is what this writes). No `{scripts}` placeholder: DVC would put its CDN tags there.
"""

from __future__ import annotations

from pathlib import Path

import vl_convert

TEMPLATE = Path(".dvc") / "offline_plots.html"
VEGA_LITE = "5.21"  # the major version of DVC's plot templates' $schema


def template() -> str:
    # a function scope around the bundle: its top-level names would clash with the `var spec` of DVC's plot scripts
    bundle = vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;", vl_version=VEGA_LITE)
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n{refresh_tag}\n<meta charset="utf-8">\n<title>DVC plots</title>\n'
        f"<script>(function () {{\n{bundle}\n}})();</script>\n"
        "<style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"
    )


if __name__ == "__main__":
    TEMPLATE.write_text(template(), encoding="utf-8")
    print(f"wrote {TEMPLATE} ({TEMPLATE.stat().st_size // 1024} kB)")
