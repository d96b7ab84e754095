"""Which CPU kernels TensorFlow may use, fixed before it loads, so that deterministic training agrees across machines.

TensorFlow's matrix products and convolutions go through oneDNN, which JIT-compiles kernels for the best
instruction set it finds (AVX2, AVX-512, ...). Kernels for different instruction sets add in different orders,
so the same training gives different last bits on an AVX2 and an AVX-512 machine. With train.deterministic,
oneDNN is capped at AVX2 (ONEDNN_MAX_CPU_ISA), which every x86-64 machine since 2013 has: AVX2 and AVX-512
machines then run the same kernels. An ONEDNN_MAX_CPU_ISA already set by the user wins. No TensorFlow here.

Not for float16 models (train.mixed_precision): on a CPU with float16 kernels (AVX512-FP16, AMX) TensorFlow hands
float16 convolutions to oneDNN, which has none at or below AVX2, so under the cap the primitive cannot be created
and training dies (measured on a Xeon with AMX: ../shared/other-machine/mixed-precision-onednn.txt). Without the
cap it runs everywhere; mixed-precision training is then reproducible on one machine, not across machines.
"""

from __future__ import annotations

import os

ONEDNN_ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
DETERMINISTIC_ISA = "AVX2"


def pin_cpu_kernels(deterministic: bool, float16: bool) -> None:
    """Call before TensorFlow is imported: oneDNN reads the variable once, when it first runs a kernel."""
    if deterministic and not float16:
        os.environ.setdefault(ONEDNN_ISA_VARIABLE, DETERMINISTIC_ISA)
