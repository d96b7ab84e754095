"""A real browser for the report tests: the system Chromium (make test installs Debian's), driven by Playwright,
with every network request blocked. Without Chromium the browser tests skip, except under CI, where they fail."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


@dataclass
class Opened:
    """What a page did in the browser: its errors, the requests it tried, its figures' sizes, its tagged numbers."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, besides itself
    figure_sizes: list[tuple[str, float, float]] = field(default_factory=list)  # (tag, width, height) of svg and img
    numbers: dict[str, str] = field(default_factory=dict)  # data-key -> the text the reader sees
    text: str = ""


def open_offline(page_file: Path, figures: str = "figure > svg, img", settle_ms: int = 0) -> Opened:
    """Open `page_file` with every request blocked but those for itself and the files beside it; `figures`: the
    drawn elements to measure, after `settle_ms` (for scripts that draw after the load)."""
    from playwright.sync_api import sync_playwright

    opened = Opened()
    url = page_file.resolve().as_uri()
    folder = page_file.resolve().parent.as_uri() + "/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda message: message.type == "error" and opened.console_errors.append(message.text))
            page.on("pageerror", lambda error: opened.console_errors.append(str(error)))

            def block(route: object) -> None:
                if route.request.url == url or route.request.url.startswith(folder):
                    route.continue_()  # the page, and files beside it (dvc plots show writes its PNGs there)
                else:
                    opened.requests.append(route.request.url)
                    route.abort()

            page.route("**/*", block)
            page.goto(url, wait_until="load")
            page.wait_for_timeout(settle_ms)
            opened.figure_sizes = page.eval_on_selector_all(
                figures,
                "nodes => nodes.map(n => [n.tagName.toLowerCase(), n.getBoundingClientRect()])"
                ".map(([tag, box]) => [tag, box.width, box.height])",
            )
            opened.numbers = page.eval_on_selector_all(
                "[data-key]", "nodes => Object.fromEntries(nodes.map(n => [n.dataset.key, n.innerText.trim()]))"
            )
            opened.text = page.inner_text("body")
        finally:
            browser.close()
    return opened
