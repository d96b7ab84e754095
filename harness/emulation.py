"""Another x86-64 CPU, emulated: QEMU's user-mode emulator runs this machine's Python on a CPU model of QEMU's
(its CPUID: instruction sets, VNNI, cache sizes), so a test sees what TensorFlow and oneDNN do on a machine we do not
have. QEMU computes floating point exactly as the hardware does, about 40 times slower. `make test` installs
Debian's qemu-user; without it the emulated tests skip, except under CI, where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

QEMU = shutil.which("qemu-x86_64")
AVX2_ONLY_CPUS = ("Haswell", "EPYC-Rome")  # Intel 2013 and AMD 2019: AVX2 and FMA, no AVX-512, no VNNI
PINNED_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")  # set by hand, they win over the project's pin
CPU_FEATURES = "from numpy._core._multiarray_umath import __cpu_features__ as f; print(f['AVX2'], f['AVX512F'])"
ONEDNN_DEFAULT = "from tensorflow.python.util import _pywrap_util_port as u; print(u.IsMklEnabled())"


def on_cpu(cpu: str | None, *arguments: str) -> list[str]:
    """This Python with `arguments`, on QEMU's `cpu` model, or natively where `cpu` is None."""
    if cpu is None:
        return [sys.executable, *arguments]
    if QEMU is None:
        raise RuntimeError("qemu-x86_64 not found: make test installs Debian's qemu-user")
    return [QEMU, "-cpu", cpu, sys.executable, *arguments]


def unpinned(env: dict[str, str]) -> dict[str, str]:
    """`env` without the variables that would override the project's own choice of CPU kernels."""
    return {key: value for key, value in env.items() if key not in PINNED_VARIABLES}


def probe(cpu: str | None, code: str, env: dict[str, str] | None = None) -> list[str]:
    """The words `code` prints on `cpu`."""
    env = unpinned(dict(os.environ) if env is None else env)
    done = subprocess.run(on_cpu(cpu, "-c", code), env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def run_stage_on(cpu: str | None, project: Path, env: dict[str, str], module: str, dataset: str) -> str:
    """`python -m stages.<module> <dataset>` in `project` on `cpu`; its output, AssertionError when it fails."""
    done = subprocess.run(
        on_cpu(cpu, "-m", f"stages.{module}", dataset), cwd=project, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise AssertionError(f"stages.{module} {dataset} on {cpu or 'this CPU'} failed:\n{done.stderr[-3000:]}")
    return done.stdout
