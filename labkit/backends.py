"""Running one model on several backends: PyTorch, ONNX Runtime, and the onnx reference evaluator."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .onnxfile import ModelLike, OnnxFile, TensorSpec

__all__ = ["BACKENDS", "make_session", "prepare_inputs", "run_onnx", "run_torch", "to_numpy", "torch_args",
           "check_backends"]

BACKENDS = ("onnxruntime", "reference")


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array from a numpy array, a torch tensor (detached, on CPU) or a Python number/list.

    A tensor whose dtype numpy lacks (bfloat16, the float8 types) becomes an ml_dtypes array of
    the same dtype, the types onnx and ONNX Runtime use for them.
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        tensor = value.detach().cpu()
        try:
            return tensor.numpy()
        except TypeError:  # "Got unsupported ScalarType BFloat16"
            return _ml_dtypes_array(tensor)
    return np.asarray(value)


def _ml_dtypes_array(tensor) -> np.ndarray:
    """The tensor as the ml_dtypes type of the same name, through float32 (exact for every type narrower)."""
    name = str(tensor.dtype).removeprefix("torch.")
    try:
        import ml_dtypes
    except ImportError:
        ml_dtypes = None
    kind = getattr(ml_dtypes, name, None) if tensor.is_floating_point() or tensor.is_complex() else None
    if kind is None:
        raise TypeError(f"a torch {name} tensor has no numpy equivalent here: convert it first, e.g. "
                        "tensor.float()" + ("" if ml_dtypes else " (or pip install ml_dtypes)"))
    return (tensor.cfloat() if tensor.is_complex() else tensor.float()).numpy().astype(kind)


def check_backends(backends: Sequence[str]) -> list[str]:
    """The backends as a list, after checking each is known and that there is at least one."""
    if isinstance(backends, str):
        backends = [backends]
    backends = list(backends)
    if not backends:
        raise ValueError(f"no backend to run: pass backends= with at least one of {', '.join(BACKENDS)}")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend {unknown[0]!r}; choose one of {', '.join(BACKENDS)}")
    return backends


def make_session(model: ModelLike, *, providers: Sequence[str] = ("CPUExecutionProvider",),
                 threads: int | None = None, options=None):
    """An `onnxruntime.InferenceSession` with explicit providers (ORT asks for them since 1.9)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    unknown = [p for p in providers if p not in available]
    if unknown or not providers:
        raise ValueError(f"execution provider {unknown[0]!r} is not available here; this onnxruntime has: "
                         f"{', '.join(available)}" if unknown else "providers is empty: pass ['CPUExecutionProvider']")
    if options is None:
        options = ort.SessionOptions()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
        options.intra_op_num_threads = threads
    loaded = OnnxFile.open(model)  # clear errors for missing / non-ONNX files and missing weights files
    source = str(loaded.path) if loaded.path is not None else loaded.proto.SerializeToString()
    return ort.InferenceSession(source, sess_options=options, providers=list(providers))


def _hint_for_rank(spec: TensorSpec, shape: tuple) -> str:
    if len(shape) + 1 == len(spec.shape):
        return ": add a batch dimension (x[None])"
    if len(shape) == len(spec.shape) + 1 and shape[0] == 1:
        return ": drop the extra leading dimension (x[0])"
    return ""


def _check_one(spec: TensorSpec, array: np.ndarray) -> None:
    if spec.shape and len(array.shape) != len(spec.shape):
        raise ValueError(
            f"input '{spec.name}' expects rank {len(spec.shape)} {spec.shape_text()}, "
            f"got shape {tuple(array.shape)}{_hint_for_rank(spec, array.shape)}"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, array.shape)):
        if isinstance(want, int) and want != got:
            raise ValueError(
                f"input '{spec.name}' expects shape {spec.shape_text()}, got {tuple(array.shape)}: "
                f"dim {axis} is fixed at {want} in the model; export with that dim dynamic "
                "(dynamic_axes / dynamic_shapes) to accept other sizes"
            )
    if spec.dtype is not None and array.dtype != spec.dtype:
        raise ValueError(
            f"input '{spec.name}' expects {spec.dtype}, got {array.dtype}: "
            f"convert with x.astype(np.{spec.dtype}) (or tensor.to(torch.{spec.dtype}))"
        )


def _is_array_like(value: Any) -> bool:
    return isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "detach")


def _positional(inputs: Any) -> list:
    """A tuple/list of inputs, one per graph input; a plain nested Python list is refused, not split."""
    if not isinstance(inputs, (tuple, list)):
        return [inputs]
    if not all(_is_array_like(v) for v in inputs):
        raise ValueError("inputs is a Python list or tuple of plain values: for one input pass an array "
                         "(np.array(..., dtype=np.float32) or a torch tensor); for several inputs pass a tuple of "
                         "arrays, one per input")
    return list(inputs)


def prepare_inputs(model: ModelLike, inputs: Any) -> dict[str, np.ndarray]:
    """Feed dict for `model`: from a dict by name, a sequence in order, or one array; checked against the model."""
    specs = OnnxFile.open(model).inputs
    names = [s.name for s in specs]
    if isinstance(inputs, Mapping):
        unknown = [k for k in inputs if k not in names]
        if unknown:
            raise ValueError(f"model has no input {unknown[0]!r}; its inputs are: {', '.join(map(repr, names))}")
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ValueError(f"missing input {missing[0]!r}; the model expects: {', '.join(map(repr, names))}")
        arrays = {k: to_numpy(inputs[k]) for k in names}
    else:
        values = _positional(inputs)
        if len(values) != len(names):
            raise ValueError(
                f"model expects {len(names)} input(s) ({', '.join(map(repr, names))}), got {len(values)}: "
                "pass a dict {name: array} or a tuple in that order"
            )
        arrays = {n: to_numpy(v) for n, v in zip(names, values)}
    for spec in specs:
        _check_one(spec, arrays[spec.name])
    return arrays


def run_onnx(model: ModelLike, inputs: Any, *, backend: str = "onnxruntime", session=None) -> dict[str, np.ndarray]:
    """Run `model` on one backend and return its outputs by name, in graph order (copies, never ORT's views)."""
    check_backends([backend])
    loaded = OnnxFile.open(model)
    feeds = prepare_inputs(loaded, inputs)
    names = [s.name for s in loaded.outputs]
    if backend == "onnxruntime":
        session = session or make_session(loaded)
        values = session.run(names, feeds)
    else:
        from onnx.reference import ReferenceEvaluator

        values = ReferenceEvaluator(loaded.full()).run(names, feeds)
    return dict(zip(names, (np.array(v) for v in values)))  # copies: ORT views keep the session memory alive


def _flatten(value: Any) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _flatten(item)]
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in _flatten(item)]
    return [value]


def torch_args(inputs: Any) -> tuple:
    """Positional arguments for a torch model: a dict's values in order, a sequence, or one value; arrays -> tensors.

    Arrays and tensors are copied, so a model that changes its input in place (`x /= 255`) changes
    neither the caller's values nor what another backend is then given.
    """
    import torch

    values = tuple(inputs.values()) if isinstance(inputs, Mapping) else (
        tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,))
    return tuple(_to_tensor(v) if isinstance(v, np.ndarray) else v.clone() if isinstance(v, torch.Tensor) else v
                 for v in values)


def _to_tensor(array: np.ndarray):
    """A torch copy of `array`; an ml_dtypes array (bfloat16, float8) becomes the torch dtype of the same name."""
    import torch

    kind = getattr(torch, array.dtype.name, None) if array.dtype.type.__module__.startswith("ml_dtypes") else None
    if isinstance(kind, torch.dtype):
        return torch.from_numpy(array.astype(np.float32)).to(kind)
    return torch.tensor(array)


def run_torch(torch_model, inputs: Any) -> list[np.ndarray]:
    """Run a torch module in eval mode, without grad, on copies of `inputs`; its outputs flattened to numpy arrays.

    Each submodule's train/eval mode is restored afterwards, so checking a model does not change it.
    """
    import torch

    modes = [(m, m.training) for m in torch_model.modules()] if isinstance(torch_model, torch.nn.Module) else []
    try:
        if modes:
            torch_model.eval()
        with torch.no_grad():
            result = torch_model(*torch_args(inputs))
    finally:
        for module, training in modes:
            module.training = training
    return [to_numpy(v) for v in _flatten(result)]
