"""Push and pull of a pipeline's outputs through a DVC remote: a local folder and a real sshd on loopback.

    python -m benchmarks.remote_speed [--project .]

The project must have run (`make run`): its dvc.lock outputs are pushed to each remote from a throw-away
clone of the project folder, then pulled into a fresh clone. Prints files, bytes and seconds per remote.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from benchmarks.common import arguments, seconds
from harness.project import git, run_in
from harness.sshd import running_sshd


def round_trip(project: Path, scratch: Path, url: str, keyfile: Path | None) -> tuple[float, float, int, int]:
    """(push s, pull s, files, bytes) for one remote, from a copy of `project` that shares its DVC cache."""
    sender, receiver = scratch / "sender", scratch / "receiver"
    for clone in (sender, receiver):
        git(scratch, "clone", "-q", str(project), str(clone))
        shutil.copy(project / "dvc.lock", clone / "dvc.lock")  # the workspace's run, committed or not
    run_in(sender, "dvc", "cache", "dir", str((project / ".dvc" / "cache").resolve()))
    for clone in (sender, receiver):
        run_in(clone, "dvc", "remote", "add", "--default", "--local", "bench", url)
        if keyfile:
            run_in(clone, "dvc", "remote", "modify", "--local", "bench", "keyfile", str(keyfile))
    push = seconds(lambda: run_in(sender, "dvc", "push"))
    pull = seconds(lambda: run_in(receiver, "dvc", "pull"))
    files = [
        path for path in receiver.rglob("*") if path.is_file() and ".git" not in path.parts and ".dvc" not in path.parts
    ]
    return push, pull, len(files), sum(path.stat().st_size for path in files)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--project", type=Path, default=Path("."))
    args = parser.parse_args()
    project = args.project.resolve()
    print("| remote | files pulled | MB | push s | pull s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        (scratch / "local").mkdir()
        push, pull, files, size = round_trip(project, scratch / "local", str(scratch / "local-storage"), None)
        print(f"| local folder | {files:,} | {size / 1e6:,.1f} | {push:.1f} | {pull:.1f} |")
        with running_sshd(scratch / "sshd") as server:
            home = scratch / "home"
            (home / ".ssh").mkdir(parents=True)
            shutil.copy(server.known_hosts, home / ".ssh" / "known_hosts")
            os.environ["HOME"] = str(home)
            (scratch / "ssh").mkdir()
            push, pull, files, size = round_trip(
                project, scratch / "ssh", server.url(scratch / "ssh-storage"), server.key
            )
        print(f"| ssh (sshd on loopback) | {files:,} | {size / 1e6:,.1f} | {push:.1f} | {pull:.1f} |")


if __name__ == "__main__":
    main()
