"""Lesson 04 exercises: teach the exporters an operator they lack, checked in ONNX Runtime against PyTorch.

`torch.onnx.register_custom_op_symbolic` is global to the process, so a check never relies on what
the notebook registered. It registers the learner's function itself at CHECK_OPSET, exports a fresh
model at that opset (the exporter picks the registration with the highest opset <= the export
opset, so the learner's registrations at lower opsets cannot shadow it), runs it, and unregisters it
again. Registrations the learner made at other opsets are left as they were.
"""
from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from ..notebook import hide_native_stdout
from .checks import require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "CHECK_OPSET"]

CHECK_OPSET = 17


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the legacy exporter's deprecation notice and the C++ graph dump it prints to fd 1 on failure."""
    with hide_native_stdout(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _registered(name: str, symbolic: Callable) -> Iterator[None]:
    """`symbolic` registered for `name` at CHECK_OPSET inside the block only."""
    import torch

    torch.onnx.register_custom_op_symbolic(name, symbolic, CHECK_OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic(name, CHECK_OPSET)


def _module(fn: Callable):
    """A torch module whose forward applies `fn` (torch is imported lazily to keep this file cheap to import)."""
    import torch

    class Apply(torch.nn.Module):
        def forward(self, x):
            return fn(x)

    return Apply().eval()


def _legacy_export(model, x, folder: str, stem: str):
    import onnx
    import torch

    path = Path(folder) / f"{stem}.onnx"
    with _quiet_export():
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=CHECK_OPSET,
                          input_names=["x"], output_names=["y"])
    return onnx.load(str(path))


def _ops(model) -> str:
    from ..inspect import op_counts

    return ", ".join(sorted(op_counts(model)))


def _require_match(torch_model, model, x, what: str, hint: str) -> None:
    from ..compare import compare_with_torch

    result = compare_with_torch(torch_model, model, x, backends=("onnxruntime",))
    if not result:
        raise Incorrect(f"ONNX Runtime's output differs from {what} (max abs error {result.max_abs:.2g}; "
                        f"the graph's ops: {_ops(model)}): {hint}")


def _require_function(name: str, value) -> None:
    if not callable(value):
        raise Incorrect(f"`{name}` should be a function (g, ...) -> value, but it is a {type(value).__name__}")


def _check_q1(ex1_symbolic) -> str:
    import torch

    _require_function("ex1_symbolic", ex1_symbolic)
    x = 1 + 4 * torch.rand(3, 4, generator=torch.Generator().manual_seed(1))
    torch_model = _module(torch.acosh)
    with tempfile.TemporaryDirectory() as folder, _registered("aten::acosh", ex1_symbolic):
        model = _legacy_export(torch_model, x, folder, "acosh")
    _require_match(torch_model, model, x, "torch.acosh", "the symbolic should emit one Acosh node on its input")
    return f"exported with ops [{_ops(model)}]; ONNX Runtime matches torch.acosh"


def _check_q2(ex2_symbolic) -> str:
    import torch

    _require_function("ex2_symbolic", ex2_symbolic)
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2))
    with tempfile.TemporaryDirectory() as folder, _registered("aten::logcumsumexp", ex2_symbolic):
        for dim in (1, -1):
            torch_model = _module(lambda t, dim=dim: torch.logcumsumexp(t, dim))
            model = _legacy_export(torch_model, x, folder, f"logcumsumexp_{dim}")
            _require_match(torch_model, model, x, f"torch.logcumsumexp(x, dim={dim})",
                           "use the dim argument as CumSum's axis (Exp, then CumSum, then Log)")
    if "CumSum" not in _ops(model):
        raise Incorrect(f"the graph has no CumSum node; its ops are: {_ops(model)}")
    return f"exported with ops [{_ops(model)}] for dim=1 and dim=-1; ONNX Runtime matches torch"


def _check_q3(ex3_table) -> str:
    import torch

    require_type("ex3_table", ex3_table, dict)
    if torch.ops.aten.atanh.default not in ex3_table:
        keys = ", ".join(str(k) for k in ex3_table) or "nothing"
        raise Incorrect(f"`ex3_table` maps {keys}; it needs the key torch.ops.aten.atanh.default")
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(3)) * 1.8 - 0.9
    torch_model = _module(torch.atanh)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(torch_model, (x,), dynamo=True, verbose=False,
                                    custom_translation_table=ex3_table)
    model = program.model_proto
    if "Atanh" in _ops(model).split(", "):
        raise Incorrect(f"the graph still has an Atanh node (ops: {_ops(model)}): "
                        "your function must build atanh from Log, Div, Add, Sub and Mul")
    _require_match(torch_model, model, x, "torch.atanh", "check the formula 0.5 * log((1 + x) / (1 - x))")
    return f"exported with ops [{_ops(model)}], no Atanh; ONNX Runtime matches torch.atanh"


q1, q2, q3 = bind('04_operator_support', [
    Exercise(
        title='a symbolic for aten::acosh',
        answers=['ex1_symbolic'],
        check=_check_q1,
        hints=[
        "The schema is `aten::acosh(Tensor self) -> Tensor`, so the function is `def ex1_symbolic(g, self): ...`.",
        "Return `g.op(\"Acosh\", self)`, then `torch.onnx.register_custom_op_symbolic(\"aten::acosh\", ex1_symbolic, 9)`.",
    ],
    ),
    Exercise(
        title='logcumsumexp as Exp, CumSum, Log',
        answers=['ex2_symbolic'],
        check=_check_q2,
        hints=[
        "Decorate the function with `@symbolic_helper.parse_args(\"v\", \"i\")`: `self` stays a graph value, "
        "`dim` becomes a Python int.",
        "CumSum's axis is an input tensor: `axis = g.op(\"Constant\", value_t=torch.tensor(dim, dtype=torch.int64))`, "
        "then `g.op(\"Log\", g.op(\"CumSum\", g.op(\"Exp\", self), axis))`.",
    ],
    ),
    Exercise(
        title="override the default exporter's atanh",
        answers=['ex3_table'],
        check=_check_q3,
        hints=[
        "The key is the ATen overload `torch.ops.aten.atanh.default`; the value is an onnxscript function "
        "`def atanh_onnx(x): ...` built from `op.*` calls (`from onnxscript import opset20 as op`).",
        "`one = op.CastLike(1.0, x)` makes a constant of x's dtype; then "
        "`op.CastLike(0.5, x) * op.Log((one + x) / (one - x))`.",
    ],
    ),
])
