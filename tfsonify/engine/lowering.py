"""How the deconvnet's graph is written for a runtime: an explicit option, passed by whoever traces it.

The same rules can be written as different (equal) op sequences. TensorFlow's own kernels want
``conv1d_transpose`` and gathered kernel columns (the least arithmetic); TFLite files want the
backward written against the forward filter's layout, and full-integer quantisation wants every
filter a constant. :class:`tfsonify.engine.walk.DeconvNet` (and :class:`tfsonify.Sonifier`) take a
``lowering=`` argument; the TFLite exporter passes :data:`TFLITE` or :data:`TFLITE_INT8`, the TF
runtime uses :data:`TENSORFLOW`. No process-global state: two sonifiers with different lowerings can
live side by side (the tests compare them).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Lowering", "TENSORFLOW", "TFLITE", "TFLITE_INT8"]


@dataclass(frozen=True)
class Lowering:
    """Op choices of the deconvnet's graph (the numbers are the same to float rounding: tested).

    Attributes:
        matmul_transposes: write every transposed convolution (and the chosen maps' kernel rows) against the
            ``[C_out, k * C_in]`` layout TFLite's forward ``CONV_2D`` stores, as a matmul plus an overlap-add,
            so :mod:`tfsonify.export.tflite_weights` can keep one copy of each kernel (~1e-6 relative to
            ``tf.nn.conv1d_transpose``).
        constant_kernels: never gather a part of a kernel: the top conv of a chosen-maps graph runs on all
            channels and its output is gathered; transposes mask one-hot rows through the whole kernel. TFLite's
            full-integer quantiser treats a computed filter as an activation (asymmetric zero point), which its
            int8 ``CONV_2D`` refuses (``zero_point != 0``).
    """

    matmul_transposes: bool = False
    constant_kernels: bool = False


#: TensorFlow's runtime (CPU, GPU, XLA): ``conv1d_transpose`` and gathered kernel columns.
TENSORFLOW = Lowering()
#: TFLite float / fp16 / dynamic-range files: one copy of each kernel.
TFLITE = Lowering(matmul_transposes=True)
#: TFLite full-integer int8 files: one copy of each kernel, every filter a constant.
TFLITE_INT8 = Lowering(matmul_transposes=True, constant_kernels=True)
