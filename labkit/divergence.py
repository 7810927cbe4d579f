"""Finding the first tensor where an ONNX export stops agreeing with its PyTorch model.

Three steps, each usable on its own, and `find_divergence` that runs them:

1. `expose_intermediates` makes every intermediate tensor a graph output, so one run returns them all.
2. `capture_activations` records, with forward hooks, what every torch module received and returned.
3. `module_boundaries` says which ONNX tensors enter and leave the part of the graph that each torch
   module became. Tensor names cannot be used for this: the exporters generate them
   ('/convs1/convs1.2/Conv_output_0' from the legacy exporter, 'conv2d_2' from the dynamo one) and
   they change between exporters and versions. Both exporters do record the module scope of each
   node, though: the legacy one in the node name ('/convs1/convs1.0/Conv'), the dynamo one in the
   node metadata 'pkg.torch.onnx.name_scopes' (['', 'convs1', 'convs1.0', 'conv2d']). A node without
   either falls back to the module that owns the parameters it reads ('convs1.0.weight').

A tensor leaving a module's nodes is paired with that module's output, a tensor entering them with the
module's input, if the pairing is unambiguous: as many ONNX tensors as torch tensors and unique shapes.
Modules called more than once are skipped (one ONNX scope, several torch values). Exporters fuse
ops (Conv + BatchNorm) and label the fused node with either module, so one ONNX tensor can have
several torch candidates with different values; it passes when it agrees with one of them.
"""
from __future__ import annotations

import ast
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from .backends import _flatten, check_backends, prepare_inputs, run_onnx, torch_args
from .compare import check_tolerances, compare_arrays
from .onnxfile import ModelLike, graph_inputs, load_model
from .report import format_table, summary_line, verdict_rows

__all__ = ["Activation", "Boundary", "DivergenceReport", "TensorCheck", "capture_activations",
           "expose_intermediates", "find_divergence", "module_boundaries", "node_scope"]

_SCOPE_KEY = "pkg.torch.onnx.name_scopes"


# ---------------------------------------------------------------------------------------------- ONNX side
def _constant_tensors(graph: onnx.GraphProto) -> set[str]:
    """Initializers, Constant outputs, and everything computed only from them (no graph input involved)."""
    constant = {init.name for init in graph.initializer}
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (inputs and all(name in constant for name in inputs)):
            constant.update(name for name in node.output if name)
    return constant


def expose_intermediates(model: ModelLike) -> onnx.ModelProto:
    """A copy of `model` whose graph outputs also include every intermediate tensor that depends on an input."""
    proto = load_model(model)
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    try:
        inferred = onnx.shape_inference.infer_shapes(exposed).graph
        types = {vi.name: vi for vi in [*inferred.value_info, *inferred.output]}
    except (onnx.shape_inference.InferenceError, ValueError):  # types are optional for ORT and the evaluator
        types = {}
    constant = _constant_tensors(exposed.graph)
    present = {vi.name for vi in exposed.graph.output}
    for node in exposed.graph.node:
        for name in node.output:
            if name and name not in present and name not in constant:
                info = types.get(name) or onnx.helper.make_empty_tensor_value_info(name)
                exposed.graph.output.append(info)
                present.add(name)
    return exposed


def node_scope(node: onnx.NodeProto) -> list[str] | None:
    """The module path an exporter recorded for `node` (e.g. ['convs1', 'convs1.0']); None if it recorded none."""
    for prop in node.metadata_props:
        if prop.key == _SCOPE_KEY:  # dynamo: "['', 'convs1', 'convs1.0', 'conv2d']" (last entry: the op)
            try:
                parts = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                return [p for p in parts[:-1] if p]
    if node.name.startswith("/"):  # legacy: '/convs1/convs1.0/Conv' (last part: the op)
        return [p for p in node.name.split("/")[1:-1] if p]
    return None


def _module_chain(parts: list[str], modules: set[str]) -> list[str]:
    """Qualified module names from the root down, e.g. ['convs1', 'convs1.0']; stops at an unknown part."""
    chain, current = [], ""
    for part in parts:
        child = f"{current}.{part}" if current else part
        if child in modules:  # legacy writes attribute names ('layer1' / 'layer1.0' / 'conv1')
            current = child
        elif part in modules and (not current or part.startswith(current + ".")):  # dynamo: qualified names
            current = part
        else:  # e.g. legacy 'shared_1', the second call of a module: no single torch value
            break
        chain.append(current)
    return chain


def _chain_from_parameters(node: onnx.NodeProto, initializers: set[str], modules: set[str]) -> list[str]:
    for name in node.input:
        owner = name.rpartition(".")[0]
        if name in initializers and owner in modules:
            pieces = owner.split(".")
            return [p for p in (".".join(pieces[:i]) for i in range(1, len(pieces) + 1)) if p in modules]
    return []


@dataclass(frozen=True)
class Boundary:
    """The ONNX tensors entering and leaving the nodes that one torch module became."""

    module: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[str, ...]


def _module_names(torch_model) -> set[str]:
    import torch

    if not isinstance(torch_model, torch.nn.Module):
        raise TypeError(f"torch_model must be a torch.nn.Module, got {type(torch_model).__name__}")
    return {name for name, _ in torch_model.named_modules()}


def module_boundaries(onnx_model: ModelLike, torch_model) -> dict[str, Boundary]:
    """For each module of `torch_model` ('' is the whole model), the ONNX tensors that enter and leave it."""
    modules = _module_names(torch_model)
    graph = load_model(onnx_model, load_external_data=False).graph
    constant = _constant_tensors(graph)
    initializers = {init.name for init in graph.initializer}
    chains = []
    for node in graph.node:
        parts = node_scope(node)
        chains.append(_module_chain(parts, modules) if parts is not None
                      else _chain_from_parameters(node, initializers, modules))
    consumers = defaultdict(set)
    for index, node in enumerate(graph.node):
        for name in node.input:
            consumers[name].add(index)
    graph_outputs = [vi.name for vi in graph.output]
    result = {"": Boundary("", tuple(vi.name for vi in graph_inputs(graph)),
                           tuple(graph_outputs), tuple(node.name for node in graph.node))}
    for module in dict.fromkeys(m for chain in chains for m in chain):  # in order of first node
        inside = [i for i, chain in enumerate(chains) if module in chain]
        inside_set = set(inside)
        produced = [name for i in inside for name in graph.node[i].output if name and name not in constant]
        produced_set = set(produced)
        inputs = [name for i in inside for name in graph.node[i].input
                  if name and name not in constant and name not in produced_set]
        outputs = [name for name in produced
                   if name in graph_outputs or consumers[name] - inside_set]
        result[module] = Boundary(module, tuple(dict.fromkeys(inputs)), tuple(dict.fromkeys(outputs)),
                                  tuple(graph.node[i].name for i in inside))
    return result


# --------------------------------------------------------------------------------------------- torch side
@dataclass(frozen=True)
class Activation:
    """One tensor that a torch module received ('input') or returned ('output') in a forward pass."""

    order: int
    module: str
    kind: str
    index: int
    count: int
    call: int
    value: np.ndarray

    @property
    def label(self) -> str:
        """'convs1.0 output', 'head input', 'model output[1]': where the value was seen."""
        where = self.module or "model"
        return f"{where} {self.kind}" + (f"[{self.index}]" if self.count > 1 else "")


def capture_activations(torch_model, inputs: Any) -> list[Activation]:
    """Run `torch_model` once (eval mode, no grad) and record every module's tensor inputs and outputs, in order."""
    import torch

    _module_names(torch_model)
    events: list[Activation] = []
    calls: Counter = Counter()

    def record(name: str, kind: str, value: Any) -> None:
        leaves = [leaf for leaf in _flatten(value) if isinstance(leaf, torch.Tensor)]
        for index, tensor in enumerate(leaves):  # copied: a later in-place op must not change what we saw
            tensor = tensor.detach().cpu().clone()
            if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
                tensor = tensor.float()
            events.append(Activation(len(events), name, kind, index, len(leaves), calls[name], tensor.numpy()))

    def pre_hook(name):
        return lambda module, args: record(name, "input", args)

    def post_hook(name):
        def hook(module, args, output):
            record(name, "output", output)
            calls[name] += 1
        return hook

    handles = []
    try:
        for name, module in torch_model.named_modules():
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook(name)))
        torch_model.eval()
        with torch.no_grad():
            torch_model(*torch_args(inputs))
    finally:
        for handle in handles:
            handle.remove()
    return events


# ------------------------------------------------------------------------------------------- matching
def _pair(names: tuple[str, ...], seen: list[Activation], values: dict[str, np.ndarray],
          by_position: bool) -> list[tuple[str, Activation]]:
    """Pair ONNX tensors with torch activations: same count, then by position (whole model) or unique shape."""
    names = tuple(n for n in names if n in values)
    if not names or len(names) != len(seen):
        return []
    if by_position:
        return [(n, a) for n, a in zip(names, seen) if values[n].shape == a.value.shape]
    shapes = Counter(a.value.shape for a in seen)
    onnx_shapes = Counter(values[n].shape for n in names)
    return [(n, a) for n in names for a in seen
            if values[n].shape == a.value.shape and shapes[a.value.shape] == 1 and onnx_shapes[a.value.shape] == 1]


def _candidates(boundaries: dict[str, Boundary], events: list[Activation],
                values: dict[str, np.ndarray]) -> dict[str, list[Activation]]:
    repeated = {e.module for e in events if e.call > 0}
    seen = defaultdict(list)
    for event in events:
        if event.call == 0:
            seen[event.module, event.kind].append(event)
    found = defaultdict(list)
    for module, boundary in boundaries.items():
        if module in repeated:
            continue
        for kind, names in (("input", boundary.inputs), ("output", boundary.outputs)):
            for name, event in _pair(names, seen[module, kind], values, by_position=(module == "")):
                found[name].append(event)
    for events_of_tensor in found.values():
        events_of_tensor.sort(key=lambda e: e.order)  # the innermost module first ('convs1.2' before 'convs1')
    return found


# ------------------------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class TensorCheck:
    """One ONNX intermediate compared with its torch counterpart."""

    tensor: str
    node: str
    op_type: str
    torch: str
    shape: tuple
    passed: bool
    max_abs: float
    max_rel: float
    needed_atol: float
    candidates: int


class DivergenceReport:
    """Every matched intermediate in graph order; truthy when some were compared and all agree with torch (nothing
    compared is FAILED). `.first` is the first failure."""

    def __init__(self, rows: list[TensorCheck], unmatched: list[str], graph: onnx.GraphProto,
                 atol: float, rtol: float, statuses: dict[str, bool]):
        self.rows = rows
        self.unmatched = unmatched
        self.atol = atol
        self.rtol = rtol
        self._graph = graph
        self._statuses = statuses

    def __bool__(self) -> bool:
        return bool(self.rows) and all(row.passed for row in self.rows)  # nothing compared is no pass

    @property
    def first(self) -> TensorCheck | None:
        """The first tensor over tolerance in topological order (None when every tensor agrees)."""
        return next((row for row in self.rows if not row.passed), None)

    @property
    def first_node(self) -> onnx.NodeProto | None:
        """The ONNX node that produced the first diverging tensor."""
        first = self.first
        return None if first is None else next(node for node in self._graph.node if first.tensor in node.output)

    def table(self) -> str:
        """`STATUS | tensor | op | torch activation | shape` lines, aligned; the first failure is marked."""
        first = self.first
        return verdict_rows((r.passed, r.tensor, r.op_type, r.torch, str(list(r.shape)),
                             "<- first divergence" if r is first else "") for r in self.rows)

    def _suspects(self) -> str:
        node = self.first_node
        initializers = {init.name for init in self._graph.initializer}
        constant = _constant_tensors(self._graph)
        unchecked = [n for n in node.input if n and n not in constant and n not in self._statuses
                     and n not in {vi.name for vi in self._graph.input}]
        params = [n for n in node.input if n in initializers]
        if unchecked:
            return (f"its input(s) {', '.join(map(repr, unchecked))} had no torch counterpart: "
                    "the fault may also be upstream of this node")
        owned = f" and its initializer(s) {', '.join(params)}" if params else ""
        return f"its inputs agree with torch, so the fault is in this node{owned}"

    def __repr__(self) -> str:
        passed = sum(r.passed for r in self.rows)
        lines = [self.table()] if self.rows else []
        lines.append(summary_line(passed, len(self.rows), "matched tensors agree with torch",
                                  suffix=f"(atol={self.atol:.0e}, rtol={self.rtol:.0e})"))
        if not self.rows:
            lines.append("no ONNX tensor could be paired with a torch module's input or output: pass the model "
                         "that was exported, and an ONNX file whose nodes keep the exporter's names or metadata")
        elif not self:
            first, node = self.first, self.first_node
            lines.append(f"first divergence: '{first.tensor}' from {node.op_type} node '{node.name}' "
                         f"(torch: {first.torch})")
            lines.append(self._suspects())
        if self.unmatched:
            lines.append(f"not compared: {len(self.unmatched)} intermediate(s) without a torch counterpart")
        return "\n".join(lines)

    def details(self) -> str:
        """Raw error figures per tensor (machine-dependent: print them in an NBVAL_IGNORE_OUTPUT cell)."""
        lines = [format_table(None, [(r.tensor, f"max abs {r.max_abs:.3e}", f"max rel {r.max_rel:.3e}",
                                      f"torch candidates {r.candidates}") for r in self.rows])] if self.rows else []
        if self.unmatched:
            lines.append(f"not compared: {', '.join(self.unmatched)}")
        return "\n".join(lines)


def _check(tensor: str, node: onnx.NodeProto, value: np.ndarray, seen: list[Activation],
           atol: float, rtol: float) -> TensorCheck:
    groups: list[tuple[Activation, Any]] = []  # torch values that differ from each other (fused ops)
    for event in seen:
        if not any(np.array_equal(event.value, g.value) for g, _ in groups):
            groups.append((event, compare_arrays("onnx", tensor, event.value, value, atol, rtol)))
    event, row = next(((e, r) for e, r in groups if r.passed), min(groups, key=lambda g: g[1].max_abs))
    return TensorCheck(tensor, node.name, node.op_type, event.label, tuple(value.shape), row.passed,
                       row.max_abs, row.max_rel, row.needed_atol, len(groups))


def find_divergence(torch_model, onnx_model: ModelLike, inputs: Any, *, atol: float = 1e-4,
                    rtol: float = 1e-3, backend: str = "onnxruntime") -> DivergenceReport:
    """Compare every ONNX intermediate with the matching torch activation; report the first over tolerance."""
    atol, rtol = check_tolerances(atol, rtol)
    check_backends([backend])
    _module_names(torch_model)
    proto = load_model(onnx_model)
    feeds = prepare_inputs(proto, inputs)
    events = capture_activations(torch_model, feeds)
    returned = [e for e in events if e.module == "" and e.kind == "output"]
    if len(returned) != len(proto.graph.output):
        raise ValueError(
            f"torch model returned {len(returned)} tensor(s), the ONNX model has {len(proto.graph.output)} "
            f"output(s) ({', '.join(vi.name for vi in proto.graph.output)}): is it an export of this model?"
        )
    values = {**feeds, **run_onnx(expose_intermediates(proto), feeds, backend=backend)}
    candidates = _candidates(module_boundaries(proto, torch_model), events, values)
    constant = _constant_tensors(proto.graph)
    rows, unmatched, statuses = [], [], {}
    for node in proto.graph.node:
        for name in node.output:
            if not name or name in constant or name not in values:
                continue
            if name not in candidates:
                unmatched.append(name)
                continue
            row = _check(name, node, values[name], candidates[name], atol, rtol)
            rows.append(row)
            statuses[name] = row.passed
    return DivergenceReport(rows, unmatched, proto.graph, atol, rtol, statuses)
