"""int8 exports: each layer's attention core as ONNX's own ``Attention`` operator.

The fp32 export traces attention as BERT's eager code writes it: per layer, Q, K and V reshaped
to heads and transposed, ``MatMul -> Mul (scale) -> Add (mask) -> Softmax -> MatMul``, then
transposed and reshaped back. In the int8 graph the matrix products are fast, so these ~10 small
passes weigh: profiled on 2,048 corpus sentences, 1 thread, AMD EPYC (Zen 5), ONNX Runtime 1.32,
the attention core took ~380 of 2,150 ms (Transpose 108, Softmax 106, the two fp32 MatMuls 145).
ONNX (opset 24) has one operator for all of it, taking Q, K and V as ``(batch, tokens, hidden)``
and each row's count of real tokens (``nonpad_kv_seqlen``: the encoders pad on the right) in place
of the mask. Rewritten so, the int8 export gave the same vectors to the bit on those sentences
and ran 963 against 937 sentences/s (5 interleaved rounds; 1,012 against 952 and 1,006 against
956 in two earlier scratch runs); in the benchmark's table 61% of the int8 peak, was 56%.
The fp32 export is not rewritten: there it was slower (361 against 386/s).

:func:`fuse_attention` rewrites only the exact pattern above and returns None for anything else
(another architecture, another exporter's graph); :func:`same_outputs` is the check the caller
keeps the result by: the quantised rewrite must give the plain quantised graph's outputs on a
padded batch, or the plain graph is used (also where ONNX Runtime is too old for the operator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: The opset whose ``Attention`` takes ``nonpad_kv_seqlen``.
OPSET = 24
#: Largest difference between the rewritten and the plain int8 graph's outputs (unit vectors)
#: on the check batch: the same arithmetic, so rounding at most.
SAME = 1e-5
_HEADS_FIRST = [0, 2, 1, 3]  # (batch, tokens, heads, size) -> (batch, heads, tokens, size)
_KEYS_T = [0, 2, 3, 1]  # (batch, tokens, heads, size) -> (batch, heads, size, tokens)


def fuse_attention(model: Any, heads: int) -> Any | None:
    """``model`` (an ``onnx.ModelProto`` of the fp32 export) at :data:`OPSET` with every attention
    core replaced by ``Attention``; None where any Softmax is not such a core."""
    import onnx
    from onnx import helper, version_converter

    model = version_converter.convert_version(model, OPSET)  # first: it rewrites some nodes
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {init.name: init for init in graph.initializer}
    mask = next((i.name for i in graph.input if i.name == "attention_mask"), None)
    softmaxes = [node for node in graph.node if node.op_type == "Softmax"]
    if mask is None or not softmaxes:
        return None
    cores = []
    for softmax in softmaxes:
        core = _match(softmax, producer, consumers, constants)
        if core is None:
            return None
        cores.append(core)
    lengths = "simsearch_nonpad_lengths"
    replaced = {core["out"]: core for core in cores}
    nodes = [
        helper.make_node(
            "ReduceSum", [mask, "simsearch_axis_1"], [lengths], keepdims=0, name="simsearch/lengths"
        )
    ]
    for node in graph.node:
        if node.output and node.output[0] in replaced:
            core = replaced[node.output[0]]
            nodes.append(
                helper.make_node(
                    "Attention",
                    [core["q"], core["k"], core["v"], "", "", "", lengths],
                    [core["out"]],
                    q_num_heads=heads,
                    kv_num_heads=heads,
                    scale=core["scale"],
                    name=f"simsearch/attention/{len(nodes)}",
                )
            )
        else:
            nodes.append(node)
    graph.initializer.append(onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), "simsearch_axis_1"))
    del graph.node[:]
    graph.node.extend(_live(nodes, {out.name for out in graph.output}))
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model


def _match(
    softmax: Any, producer: dict[str, Any], consumers: dict[str, list[Any]], constants: dict[str, Any]
) -> dict[str, Any] | None:
    """The attention core around ``softmax``: its Q, K, V sources, scale and output; or None."""
    add = producer.get(softmax.input[0])
    if add is None or add.op_type != "Add" or len(consumers.get(softmax.output[0], [])) != 1:
        return None
    scaled = next((producer.get(name) for name in add.input if _op(producer.get(name)) == "Mul"), None)
    if scaled is None:
        return None
    product = next((producer.get(name) for name in scaled.input if _op(producer.get(name)) == "MatMul"), None)
    factor = next((name for name in scaled.input if _op(producer.get(name)) != "MatMul"), None)
    scale = None if factor is None else _scalar(factor, producer, constants)
    if product is None or scale is None:
        return None
    weighted = consumers[softmax.output[0]][0]
    if weighted.op_type != "MatMul" or weighted.input[0] != softmax.output[0]:
        return None
    back = _single(consumers, weighted.output[0], "Transpose")
    out = (
        None if back is None or _perm(back) != _HEADS_FIRST else _single(consumers, back.output[0], "Reshape")
    )
    q = _source(product.input[0], producer, _HEADS_FIRST)
    k = _source(product.input[1], producer, _KEYS_T)
    v = _source(weighted.input[1], producer, _HEADS_FIRST)
    if out is None or q is None or k is None or v is None:
        return None
    return {"q": q, "k": k, "v": v, "scale": scale, "out": out.output[0]}


def _source(name: str, producer: dict[str, Any], perm: list[int]) -> str | None:
    """The ``(batch, tokens, hidden)`` tensor behind ``Transpose(perm)(Reshape(x, heads))``."""
    transpose = producer.get(name)
    if transpose is None or transpose.op_type != "Transpose" or _perm(transpose) != perm:
        return None
    reshape = producer.get(transpose.input[0])
    return reshape.input[0] if reshape is not None and reshape.op_type == "Reshape" else None


def _scalar(name: str, producer: dict[str, Any], constants: dict[str, Any]) -> float | None:
    from onnx import numpy_helper

    node = producer.get(name)
    if (
        node is not None
        and node.op_type == "Constant"
        and node.attribute
        and node.attribute[0].name == "value"
    ):
        value = numpy_helper.to_array(node.attribute[0].t)
    elif name in constants:
        value = numpy_helper.to_array(constants[name])
    else:
        return None
    return float(value) if value.size == 1 else None


def _single(consumers: dict[str, list[Any]], name: str, op: str) -> Any | None:
    users = consumers.get(name, [])
    return users[0] if len(users) == 1 and users[0].op_type == op else None


def _op(node: Any) -> str | None:
    return None if node is None else node.op_type


def _perm(node: Any) -> list[int] | None:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)


def _live(nodes: list[Any], outputs: set[str]) -> list[Any]:
    """``nodes`` (in order) that the graph's ``outputs`` depend on."""
    needed, kept = set(outputs), []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]


def same_outputs(plain: Path, fused: Path, inputs: list[str], precision: str) -> bool:
    """Whether the model files ``plain`` and ``fused`` give the same outputs (within :data:`SAME`)
    on a right-padded batch of rows of different lengths; False where either fails to run."""
    import onnxruntime

    from simsearch.encode.onnx_encoder import open_session

    rows, width = 4, 19
    lengths = np.array([19, 1, 7, 12])
    ids = (np.arange(rows * width, dtype=np.int64).reshape(rows, width) * 37) % 95 + 5  # any vocab has 100
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    feed = {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    feed = {name: feed[name] for name in inputs}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        want = open_session(plain, precision, options).run(None, feed)[0]
        got = open_session(fused, precision, options).run(None, feed)[0]
    except Exception:  # an ONNX Runtime without the operator, a graph it rejects
        return False
    return got.shape == want.shape and bool(np.max(np.abs(got - want)) <= SAME)
