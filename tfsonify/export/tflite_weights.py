"""One stored copy of each weight in a ``.tflite`` flatbuffer (a pass over the converter's output).

The sonifier runs every conv kernel twice: forward (``CONV_2D``, filter ``[C_out, 1, k, C_in]``)
and backward (the transposed convolution). TFLite's ops contract their constant operand over its
*last* axis, so the converter stores the backward kernel a second time, transposed: as
``TRANSPOSE_CONV``'s ``[C_in, 1, k, C_out]`` filter, or — when the deconvnet is traced inside
the :data:`tfsonify.engine.lowering.TFLITE` lowering, which writes the backward as ``g @ W`` with
``W = [C_out, k * C_in]`` (the forward filter's bytes) — as ``FULLY_CONNECTED``'s ``W^T``
(its constant-rhs ``BATCH_MATMUL`` → ``FULLY_CONNECTED`` rewrite). :func:`share_weights` undoes that:

1. every ``FULLY_CONNECTED`` without bias or activation whose constant weights ``[U, I]`` are the
   transpose of another constant buffer becomes ``BATCH_MATMUL(x, W)`` reading that buffer
   (``W`` is ``[I, U]``; also through a float16 ``DEQUANTIZE``);
2. buffers with identical bytes (the rows the selected-map path gathers from the same
   ``[C_out, k, C_in]`` layout) are merged, and the buffers left unused are emptied.

Both are exact: the same numbers are read, only from one place. LiteRT's ``BATCH_MATMUL`` (and
XNNPACK) pack a constant rhs once at preparation, so the runtime cost is memory, not time.
Only public flatbuffer fields of ``ai_edge_litert``'s schema are used.
"""
from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["share_weights", "weight_bytes"]

_NUMPY = {0: np.float32, 1: np.float16, 2: np.int32, 9: np.int8, 3: np.uint8, 4: np.int64}


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def weight_bytes(tflite_model: bytes, minimum: int = 1024) -> int:
    """Total bytes of the constant buffers of at least ``minimum`` bytes (the stored weights)."""
    model = _schema().Model.GetRootAs(tflite_model, 0)
    total = 0
    for index in range(model.BuffersLength()):
        buffer = model.Buffers(index)
        size = buffer.DataLength() or int(buffer.Size())
        if size >= minimum:
            total += size
    return total


def _data(buffer) -> np.ndarray | None:
    data = getattr(buffer, "data", None)
    if data is None or len(data) == 0:
        return None
    return np.asarray(data, dtype=np.uint8)


def share_weights(tflite_model: bytes) -> bytes:
    """``tflite_model`` with each constant stored once (see the module docstring); outputs unchanged.

    Args:
        tflite_model: a ``.tflite`` flatbuffer (buffers inside the file, i.e. < 2 GB).

    Returns:
        The rewritten flatbuffer bytes.
    """
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    buffers = model.buffers
    datas = [_data(buffer) for buffer in buffers]

    by_digest: dict[bytes, int] = {}
    for index, data in enumerate(datas):
        if data is not None and data.size >= 64:
            by_digest.setdefault(hashlib.blake2b(data.tobytes(), digest_size=16).digest(), index)

    codes = [max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) for code in model.operatorCodes]
    bmm = None
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors
        producer = {out: op for op in subgraph.operators for out in (op.outputs if op.outputs is not None else [])}
        users: dict[int, int] = {}
        for op in subgraph.operators:
            for tensor in op.inputs if op.inputs is not None else []:
                users[tensor] = users.get(tensor, 0) + 1
        for op in subgraph.operators:
            if codes[op.opcodeIndex] != schema.BuiltinOperator.FULLY_CONNECTED:
                continue
            options = op.builtinOptions
            inputs = list(op.inputs)
            if (len(inputs) > 2 and inputs[2] >= 0) or options is None or (
                    options.fusedActivationFunction != 0 or options.weightsFormat != 0):
                continue
            if not options.keepNumDims and len(tensors[inputs[0]].shape) != 2:
                continue  # FULLY_CONNECTED would flatten the leading axes, BATCH_MATMUL keeps them
            weight = inputs[1]
            dequantize = producer.get(weight)
            source = weight
            if datas[tensors[weight].buffer] is None:
                if dequantize is None or codes[dequantize.opcodeIndex] != schema.BuiltinOperator.DEQUANTIZE or users.get(weight) != 1:
                    continue
                source = dequantize.inputs[0]
            source_tensor = tensors[source]
            data = datas[source_tensor.buffer]
            dtype = _NUMPY.get(int(source_tensor.type))
            if data is None or dtype is None or len(source_tensor.shape) != 2:
                continue
            units, depth = (int(v) for v in source_tensor.shape)
            transposed = np.ascontiguousarray(data.view(dtype).reshape(units, depth).T)
            match = by_digest.get(hashlib.blake2b(transposed.view(np.uint8).tobytes(), digest_size=16).digest())
            if match is None or match == source_tensor.buffer or not np.array_equal(datas[match], transposed.view(np.uint8).reshape(-1)):
                continue
            if users.get(source) == 1:  # read by this op only: the tensor itself becomes the [I, U] view
                source_tensor.shape, source_tensor.buffer, source_tensor.shapeSignature = [depth, units], match, None
            else:
                shared = schema.TensorT()
                shared.shape, shared.type, shared.buffer = [depth, units], source_tensor.type, match
                shared.name = (source_tensor.name or b"") + b"/shared_T"
                tensors.append(shared)
                if source is weight:
                    inputs[1] = len(tensors) - 1
                else:
                    dequantize.inputs = [len(tensors) - 1]
            if source is not weight:
                tensors[weight].shape, tensors[weight].shapeSignature = [depth, units], None
            if bmm is None and int(schema.BuiltinOperator.BATCH_MATMUL) in codes:
                bmm = codes.index(int(schema.BuiltinOperator.BATCH_MATMUL))
            if bmm is None:
                code = schema.OperatorCodeT()
                code.builtinCode = schema.BuiltinOperator.BATCH_MATMUL
                code.deprecatedBuiltinCode = min(schema.BuiltinOperator.BATCH_MATMUL, 127)
                code.version = 1
                model.operatorCodes.append(code)
                codes.append(int(schema.BuiltinOperator.BATCH_MATMUL))
                bmm = len(model.operatorCodes) - 1
            op.opcodeIndex = bmm
            op.inputs = inputs[:2]
            op.builtinOptionsType = schema.BuiltinOptions.BatchMatMulOptions
            op.builtinOptions = schema.BatchMatMulOptionsT()

    # merge identical buffers, then empty the ones no tensor reads any more
    first: dict[bytes, int] = {}
    remap: dict[int, int] = {}
    for index, data in enumerate(datas):
        if data is None:
            continue
        key = hashlib.blake2b(data.tobytes(), digest_size=16).digest() + data.size.to_bytes(8, "little")
        if key in first and np.array_equal(datas[first[key]], data):
            remap[index] = first[key]
        else:
            first.setdefault(key, index)
    used = {int(entry.buffer) for entry in (model.metadata or [])}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = remap.get(tensor.buffer, tensor.buffer)
        for op in subgraph.operators:  # only tensors some operator reads keep their buffer
            used.update(subgraph.tensors[t].buffer for t in (op.inputs if op.inputs is not None else []) if t >= 0)
    for index, data in enumerate(datas):
        if data is not None and index not in used:
            buffers[index].data = None

    # drop the operator codes no operator uses any more (FULLY_CONNECTED once all are rewritten)
    in_use = sorted({op.opcodeIndex for subgraph in model.subgraphs for op in subgraph.operators})
    renumber = {old: new for new, old in enumerate(in_use)}
    model.operatorCodes = [model.operatorCodes[index] for index in in_use]
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            op.opcodeIndex = renumber[op.opcodeIndex]

    builder = flatbuffers.Builder(max(1024, len(tflite_model)))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
