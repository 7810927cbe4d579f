"""labkit.divergence: the first ONNX tensor that diverges from PyTorch, found for both exporters."""
from __future__ import annotations

import re

import onnx
import pytest
import torch
from onnx import numpy_helper

from labkit.divergence import (capture_activations, expose_intermediates, find_divergence, module_boundaries,
                          node_scope)
from helpers import export_both




class Block(torch.nn.Module):
    """Conv + BatchNorm (fused by both exporters) + in-place ReLU + a residual add."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(3)
        self.act = torch.nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.conv(x))) + x


class Residual(torch.nn.Module):
    """Fused ops, a module called twice (`shared`) and a functional op between modules."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Sequential(Block(), Block())
        self.shared = torch.nn.ReLU()
        self.head = torch.nn.Linear(3, 4)

    def forward(self, x):
        y = self.shared(self.layer(x)).mean((2, 3))
        return self.shared(self.head(y))


@pytest.fixture(scope="module")
def branchy(branchy_exports):
    model, x, paths, _ = branchy_exports
    return model, x, {kind: onnx.load(path) for kind, path in paths.items()}


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    torch.manual_seed(0)
    model = Residual()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    folder = tmp_path_factory.mktemp("residual")
    return model, x, {kind: onnx.load(path) for kind, path in export_both(model, x, folder).items()}


def _edited_weight(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    init = next(i for i in broken.graph.initializer if i.name == name)
    weight = numpy_helper.to_array(init).copy()
    weight[0] *= 1.5
    init.CopyFrom(numpy_helper.from_array(weight, name))
    return broken


def _consumer_of(model: onnx.ModelProto, tensor: str) -> onnx.NodeProto:
    return next(node for node in model.graph.node if tensor in node.input)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_clean_export_reports_no_divergence(branchy, exporter):
    model, x, exports = branchy
    report = find_divergence(model, exports[exporter], x)
    assert report and report.first is None and report.first_node is None
    assert len(report.rows) == 11 and not report.unmatched  # 10 Conv outputs + the Add: all matched
    assert repr(report).splitlines()[-1] == "PASSED: 11/11 matched tensors agree with torch (atol=1e-04, rtol=1e-03)"


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_finds_the_node_whose_weight_was_edited(branchy, exporter):
    model, x, exports = branchy
    broken = _edited_weight(exports[exporter], "convs3.0.weight")
    report = find_divergence(model, broken, x)
    assert not report
    assert report.first_node.name == _consumer_of(broken, "convs3.0.weight").name
    assert report.first.torch == "convs3.0 output"
    text = repr(report)
    assert "its inputs agree with torch, so the fault is in this node and its initializer(s) convs3.0.weight" in text
    assert text.count("<- first divergence") == 1


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_finds_an_edited_op_between_modules(branchy, exporter):
    model, x, exports = branchy
    broken = onnx.ModelProto()
    broken.CopyFrom(exports[exporter])
    add = next(node for node in broken.graph.node if node.op_type == "Add")
    add.op_type = "Sub"
    report = find_divergence(model, broken, x)
    assert report.first_node.op_type == "Sub" and report.first_node.name == add.name
    assert report.first.torch == "convs4 input"  # the Add has no module of its own: matched by what convs4 received


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_fused_batchnorm_and_repeated_module_give_no_false_alarm(residual, exporter):
    model, x, exports = residual
    report = find_divergence(model, exports[exporter], x)
    assert report, report
    assert len(report.rows) >= 8
    assert len(report.unmatched) == 1  # the first call of `shared`: a module called twice has no single value


class Flatten(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x).reshape(-1)


def test_nothing_paired_is_failed_never_passed_and_names_the_fix():
    """An ONNX Relu without scope names whose output keeps the batch axis torch's flattened output has not."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    report = find_divergence(Flatten(), onnx_model, torch.randn(1, 6))
    assert not report and report.rows == [] and report.unmatched == ["y"] and report.first is None
    assert repr(report).splitlines() == [
        "FAILED: 0/0 matched tensors agree with torch (atol=1e-04, rtol=1e-03)",
        "no ONNX tensor could be paired with a torch module's input or output: pass the model that was exported, "
        "and an ONNX file whose nodes keep the exporter's names or metadata",
        "not compared: 1 intermediate(s) without a torch counterpart"]
    assert report.details() == "not compared: y"


def test_report_table_is_stable_text_without_raw_floats(branchy):
    model, x, exports = branchy
    report = find_divergence(model, _edited_weight(exports["dynamo"], "convs2.1.weight"), x)
    text = repr(report)
    assert not re.search(r"\d\.\d+e[+-]\d\d", text.replace("atol=1e-04, rtol=1e-03", ""))
    first_line = text.splitlines()[0]
    assert re.fullmatch(r"PASSED \| conv2d +\| Conv \| convs1\.0 output \| \[1, 3, 18, 18\]", first_line)
    assert "max abs" in report.details()
    assert report.first.torch == "convs2.1 output"


def test_module_boundaries_agree_between_exporters(branchy):
    model, _, exports = branchy
    legacy, dynamo = (module_boundaries(exports[k], model) for k in ("legacy", "dynamo"))
    assert set(legacy) == set(dynamo) == {name for name, _ in model.named_modules()}
    assert legacy["convs3"].inputs == legacy["convs2"].inputs == legacy["convs1"].outputs
    assert dynamo["convs4"].inputs == (next(n.output[0] for n in exports["dynamo"].graph.node if n.op_type == "Add"),)
    assert len(dynamo["convs4"].nodes) == 3


def test_node_scope_reads_both_exporters(branchy):
    _, _, exports = branchy
    assert node_scope(exports["legacy"].graph.node[0]) == ["convs1", "convs1.0"]
    assert node_scope(exports["dynamo"].graph.node[0]) == ["convs1", "convs1.0"]
    assert node_scope(onnx.helper.make_node("Relu", ["x"], ["y"], name="relu")) is None


def test_expose_intermediates_adds_outputs_and_leaves_the_original_alone(branchy):
    _, _, exports = branchy
    original = exports["dynamo"]
    exposed = expose_intermediates(original)
    assert len(original.graph.output) == 1
    assert [o.name for o in exposed.graph.output][1:] == [n.output[0] for n in original.graph.node][:-1]
    onnx.checker.check_model(exposed)


def test_capture_activations_records_inputs_and_outputs_in_call_order(branchy):
    model, x, _ = branchy
    events = capture_activations(model, x)
    assert [e.label for e in events[:3]] == ["model input", "convs1 input", "convs1.0 input"]
    assert events[-1].label == "model output" and events[-1].value.shape == (1, 3, 4, 4)
    assert all(e.call == 0 for e in events)


def test_rejects_a_torch_model_that_is_not_a_module(branchy):
    _, x, exports = branchy
    with pytest.raises(TypeError, match="torch_model must be a torch.nn.Module, got function"):
        find_divergence(lambda t: t, exports["legacy"], x)


def test_rejects_negative_tolerance_and_unknown_backend(branchy):
    model, x, exports = branchy
    with pytest.raises(ValueError, match="atol must be a finite number >= 0"):
        find_divergence(model, exports["legacy"], x, atol=-1)
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        find_divergence(model, exports["legacy"], x, backend="tensorrt")


def test_rejects_inputs_of_the_wrong_shape_with_the_fix(branchy):
    model, x, exports = branchy
    with pytest.raises(ValueError, match=r"add a batch dimension \(x\[None\]\)"):
        find_divergence(model, exports["legacy"], x[0])


def test_rejects_an_onnx_model_with_other_outputs_than_the_torch_model(branchy):
    model, x, exports = branchy
    two_outputs = onnx.ModelProto()
    two_outputs.CopyFrom(exports["legacy"])
    two_outputs.graph.output.append(onnx.helper.make_empty_tensor_value_info(two_outputs.graph.node[0].output[0]))
    with pytest.raises(ValueError, match=r"torch model returned 1 tensor\(s\), the ONNX model has 2 output\(s\)"):
        find_divergence(model, two_outputs, x)


def test_rejects_a_missing_file(branchy, tmp_path):
    model, x, _ = branchy
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        find_divergence(model, tmp_path / "missing.onnx", x)


def test_the_reference_backend_finds_the_same_fault(branchy):
    model, x, exports = branchy
    broken = _edited_weight(exports["legacy"], "convs4.0.weight")
    report = find_divergence(model, broken, x, backend="reference")
    assert report.first_node.name == _consumer_of(broken, "convs4.0.weight").name


def test_reads_a_dynamo_export_with_external_weights(branchy, tmp_path):
    model, x, _ = branchy
    path = tmp_path / "external.onnx"
    torch.onnx.export(model, (x,), path, dynamo=True, verbose=False)  # weights go to external.onnx.data
    assert (tmp_path / "external.onnx.data").is_file()
    broken = _edited_weight(onnx.load(path), "convs1.1.weight")
    assert find_divergence(model, path, x)
    assert find_divergence(model, broken, x).first.torch == "convs1.1 output"


def test_falls_back_to_parameter_names_when_nodes_carry_no_scope(branchy):
    model, x, exports = branchy
    anonymous = _edited_weight(exports["dynamo"], "convs3.0.weight")
    for index, node in enumerate(anonymous.graph.node):
        node.name = f"n{index}"
        del node.metadata_props[:]
    assert all(node_scope(node) is None for node in anonymous.graph.node)
    report = find_divergence(model, anonymous, x)
    assert len(report.rows) == 11
    assert report.first.torch == "convs3.0 output" and report.first_node.name == "n5"
