"""One exception type for everything a user can fix (stages.cli prints it as one line)."""

from __future__ import annotations


class PipelineError(Exception):
    """A problem with the user's data, archive or params, described so that they can act on it."""
