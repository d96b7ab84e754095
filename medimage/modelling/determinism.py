"""Which CPU kernels TensorFlow may use, fixed before it loads, so that deterministic training agrees across machines.

Two choices that TensorFlow makes by looking at the CPU would give other last bits on other machines:
- Whether convolutions and matrix products go through oneDNN at all. On Linux, TensorFlow turns oneDNN on by
  default only on CPUs with VNNI, BF16 or AMX units (`DefaultOneDnnPolicy` in tensorflow/core/util/util.cc); an
  AVX2-only CPU runs its Eigen kernels instead, which add in another order. With train.deterministic oneDNN is
  always on (TF_ENABLE_ONEDNN_OPTS=1).
- Which instruction set oneDNN JIT-compiles its kernels for (AVX2, AVX-512, ...). It is capped at AVX2
  (ONEDNN_MAX_CPU_ISA), which every x86-64 machine since 2013 has.
AVX2 and AVX-512 machines then run the same kernels (measured under QEMU emulating AVX2-only CPUs:
docs/reproducibility.md). A variable already set by the user wins. No TensorFlow here.

Not for float16 models (train.mixed_precision): on a CPU with float16 kernels (AVX512-FP16, AMX) TensorFlow hands
float16 convolutions to oneDNN, which has none at or below AVX2, so under the cap the primitive cannot be created
and training dies (measured on a Xeon with AMX: ONEDNN_VERBOSE logs "unsupported isa" for each f16 convolution).
Without the cap it runs everywhere; mixed-precision training is then reproducible on one machine, not across machines.
"""

from __future__ import annotations

import os

ONEDNN_ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
DETERMINISTIC_ISA = "AVX2"
ONEDNN_SWITCH_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def pin_cpu_kernels(deterministic: bool, float16: bool) -> None:
    """Call before TensorFlow is imported: it reads both variables once, when it first runs a kernel."""
    if deterministic and not float16:
        os.environ.setdefault(ONEDNN_SWITCH_VARIABLE, "1")
        os.environ.setdefault(ONEDNN_ISA_VARIABLE, DETERMINISTIC_ISA)
