"""An inline picture of an ONNX graph, as SVG whose bytes are the same on every machine.

Graphviz (bundled in the pygraphviz wheel) only places fixed-size boxes; labkit writes the SVG
itself, so no font metrics, system fonts or Graphviz version banner leak into the picture.
"""
from __future__ import annotations

import html
from pathlib import Path

from .inspect import op_label
from .onnxfile import ModelLike, OnnxFile

__all__ = ["GraphPicture", "draw_graph"]

_POINTS_PER_INCH = 72
_CHAR_WIDTH = 7.2  # points per character at font-size 12, a generous estimate for sans-serif
_COLORS = {
    "compute": ("#dbe9f6", "#3b6ea5"),    # Conv, Gemm, MatMul ...
    "activation": ("#e3f1df", "#4b8b3b"),
    "shape": ("#f3ecd9", "#9a7b2f"),       # Reshape, Flatten, Concat ...
    "quant": ("#fbe3d6", "#b45f2a"),
    "control": ("#eadff4", "#7a4fa3"),     # Loop, If
    "other": ("#f2f2f2", "#666666"),
    "io": ("#ffffff", "#222222"),
}
_KIND = {
    **dict.fromkeys(["Conv", "ConvTranspose", "Gemm", "MatMul", "DeformConv", "ConvInteger",
                     "MatMulInteger", "QLinearConv", "QLinearMatMul"], "compute"),
    **dict.fromkeys(["Relu", "Sigmoid", "Tanh", "Softmax", "LeakyRelu", "Elu", "Gelu", "Asinh",
                     "Clip", "HardSigmoid", "HardSwish"], "activation"),
    **dict.fromkeys(["Reshape", "Flatten", "Concat", "Split", "Transpose", "Squeeze", "Unsqueeze",
                     "Gather", "Shape", "Slice", "Expand", "Resize", "Pad"], "shape"),
    **dict.fromkeys(["QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"], "quant"),
    **dict.fromkeys(["Loop", "If", "Scan"], "control"),
}


class GraphPicture:
    """An SVG picture that Jupyter displays inline; `.save(path)` writes it to a file."""

    def __init__(self, svg: str):
        self.svg = svg

    def _repr_svg_(self) -> str:
        return self.svg

    def __repr__(self) -> str:
        boxes = self.svg.count('class="node')
        return f"<GraphPicture: {boxes} boxes>"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.svg, encoding="utf-8")
        return path


def _box(label_lines: list[str]) -> tuple[float, float]:
    width = max(len(line) for line in label_lines) * _CHAR_WIDTH + 20
    height = 16 * len(label_lines) + 14
    return max(width, 60.0), height


def draw_graph(model: ModelLike, *, max_nodes: int = 120, rankdir: str = "TB") -> GraphPicture:
    """Draw the main graph: inputs and outputs as rounded boxes with shapes, nodes coloured by kind."""
    import pygraphviz as pgv

    loaded = OnnxFile.open(model)
    nodes = list(loaded.proto.graph.node)
    if len(nodes) > max_nodes:
        raise ValueError(
            f"the graph has {len(nodes)} nodes, more than max_nodes={max_nodes} that stay readable: "
            "pass max_nodes=... to draw it anyway, or extract a sub-model with onnx.utils.extract_model"
        )
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be 'TB' (top to bottom) or 'LR' (left to right), got {rankdir!r}")

    boxes: dict[str, tuple[list[str], str]] = {}
    producer: dict[str, str] = {}
    for spec in loaded.inputs:
        key = f"in:{spec.name}"
        boxes[key] = ([spec.name, spec.shape_text()], "io")
        producer[spec.name] = key
    for index, node in enumerate(nodes):
        key = f"node:{index}"
        boxes[key] = ([op_label(node)], _KIND.get(node.op_type, "other"))
        for name in node.output:
            producer[name] = key
    edges = []
    for index, node in enumerate(nodes):
        for name in node.input:
            if name in producer:
                edges.append((producer[name], f"node:{index}"))
    for spec in loaded.outputs:
        key = f"out:{spec.name}"
        boxes[key] = ([spec.name, spec.shape_text()], "io")
        if spec.name in producer:
            edges.append((producer[spec.name], key))

    graph = pgv.AGraph(directed=True, strict=False, rankdir=rankdir, nodesep="0.25", ranksep="0.3")
    for key, (lines, _) in boxes.items():
        width, height = _box(lines)
        graph.add_node(key, shape="box", fixedsize="true", label="",
                       width=f"{width / _POINTS_PER_INCH:.3f}", height=f"{height / _POINTS_PER_INCH:.3f}")
    for tail, head in edges:
        graph.add_edge(tail, head)
    graph.layout(prog="dot")
    return GraphPicture(_render_svg(graph, boxes))


def _render_svg(graph, boxes) -> str:
    x0, y0, x1, y1 = (float(v) for v in graph.graph_attr["bb"].split(","))
    pad = 4.0
    width, height = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad

    def flip(x: float, y: float) -> tuple[float, float]:  # graphviz y grows upward, SVG y grows down
        return x - x0 + pad, y1 - y + pad

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}pt" height="{height:.0f}pt" '
             f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for edge in graph.edges():
        points = edge.attr["pos"].split()
        if points and points[0].startswith("e,"):  # Graphviz writes the arrow's end point first
            points = points[1:] + [points[0][2:]]
        coords = [flip(*map(float, p.split(","))) for p in points]
        if len(coords) >= 4 and (len(coords) - 1) % 3 == 0:
            path = f"M{coords[0][0]:.1f},{coords[0][1]:.1f} C" + " ".join(
                f"{x:.1f},{y:.1f}" for x, y in coords[1:])
        else:
            path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<path class="edge" d="{path}" fill="none" stroke="#555" marker-end="url(#arrow)"/>')
    for node in graph.nodes():
        lines, kind = boxes[str(node)]
        fill, stroke = _COLORS[kind]
        cx, cy = flip(*map(float, node.attr["pos"].split(",")))
        w = float(node.attr["width"]) * _POINTS_PER_INCH
        h = float(node.attr["height"]) * _POINTS_PER_INCH
        radius = 10 if kind == "io" else 3
        parts.append(f'<g class="node {kind}"><rect x="{cx - w / 2:.1f}" y="{cy - h / 2:.1f}" width="{w:.1f}" '
                     f'height="{h:.1f}" rx="{radius}" fill="{fill}" stroke="{stroke}"/>')
        first_baseline = cy - (len(lines) - 1) * 8 + 4
        for i, text in enumerate(lines):
            weight = ' font-weight="bold"' if i == 0 and kind != "io" else ""
            size = ' font-size="10"' if i > 0 else ""
            parts.append(f'<text x="{cx:.1f}" y="{first_baseline + 16 * i:.1f}" text-anchor="middle"{weight}{size}>'
                         f"{html.escape(text)}</text>")
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)
