"""Loading an Ultralytics ``.pt`` checkpoint without running code from it.

A checkpoint is a pickle, and unpickling calls whatever the file names: Ultralytics loads it whole (its opt-in
safe mode needs torch >= 2.6; the Jetson image runs torch 1.11). Here the pickle is read by a restricted unpickler
(Python's own, with two opcodes guarded), on every torch version this package supports:

- a name the file refers to must be on an allow-list: the layer classes of ``torch.nn.modules`` and
  ``ultralytics.nn.modules``, Ultralytics' detection model class, the tensor rebuilders torch itself writes,
  and a few plain containers (``OrderedDict``, ``set``, ``torch.Size``, numpy scalars, paths);
- those classes are only ever *created empty* and filled with state (pickle's NEWOBJ + BUILD, which is how torch
  saves modules): calling a class with arguments (REDUCE, INST, OBJ) is refused except for the plain containers,
  so no constructor runs with attacker-chosen arguments;
- TorchScript archives (which ``torch.load`` would hand to ``torch.jit.load``) are refused before loading.

Anything else is a :class:`~splitinfer.errors.ModelError` naming what was refused. Part of the node runtime:
Python 3.8, torch 1.11.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Union

from splitinfer.errors import ModelError

__all__ = ["load_checkpoint"]

_CALLABLE = frozenset({  # may be called with arguments from the file: they only build data
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.slice", "builtins.complex",
    "__builtin__.set", "__builtin__.frozenset", "__builtin__.slice",
    "torch.Size", "torch.device",
    "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath",
    "datetime.datetime", "datetime.date", "datetime.timedelta",
})
_STATE_ONLY = frozenset({  # may be created empty and given state (NEWOBJ + BUILD), never called
    "ultralytics.nn.tasks.DetectionModel", "ultralytics.utils.IterableSimpleNamespace", "types.SimpleNamespace",
    "argparse.Namespace", "numpy.ndarray",
})
_LAYER_MODULES = ("torch.nn.modules.", "ultralytics.nn.modules.")
_RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _allowed(module: str, name: str) -> bool:
    key = f"{module}.{name}"
    return key in _CALLABLE or key in _STATE_ONLY or module.startswith(_LAYER_MODULES) or _is_dtype(module, name)


def _is_dtype(module: str, name: str) -> bool:
    return module == "torch" and name in ("float16", "float32", "float64", "bfloat16", "int64", "int32", "uint8",
                                          "bool", "int8", "int16", "half", "float", "double", "long")


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes can be guarded
    dispatch: ClassVar[Dict[int, Any]] = dict(pickle._Unpickler.dispatch)
    stack: List[Any]  # the pure-Python unpickler's, typeshed does not know it

    def find_class(self, module: str, name: str) -> Any:
        if not _allowed(module, name):
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a model file")
        try:
            obj = getattr(importlib.import_module(_RENAMED.get(module, module)), name)
        except (ImportError, AttributeError) as exc:
            raise _Missing(f"{module}.{name}") from exc
        if module.startswith(_LAYER_MODULES):
            import torch

            if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
                raise pickle.UnpicklingError(f"{module}.{name} is not a layer class")
        return obj

    def _refuse_call(self, func: Any) -> None:
        name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', getattr(func, '__name__', '?'))}"
        if not any(_same(func, allowed) for allowed in _CALLABLE):
            raise pickle.UnpicklingError(f"calling {name} is not allowed in a model file")

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self._refuse_call(func)
        self.stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _instantiate(self, klass: Any, idx: int) -> None:  # INST and OBJ (protocols 0 and 1)
        self._refuse_call(klass)
        super()._instantiate(klass, idx)  # type: ignore[misc]


def _same(func: Any, key: str) -> bool:
    module, _, name = key.rpartition(".")
    module = _RENAMED.get(module, module)
    try:
        return getattr(importlib.import_module(module), name) is func
    except (ImportError, AttributeError):
        return False


class _Missing(ModelError):
    """A name the file needs is not in this torch/Ultralytics (a checkpoint from a newer version)."""


_PICKLE = types.ModuleType("splitinfer_safe_pickle")
_PICKLE.Unpickler = _SafeUnpickler  # type: ignore[attr-defined]
_PICKLE.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
_PICKLE.load = lambda f, **kw: _SafeUnpickler(f, **kw).load()  # type: ignore[attr-defined]
_PICKLE.__version__ = pickle.format_version  # type: ignore[attr-defined]


def _torch_load(path: str) -> Any:
    import torch

    kwargs: Dict[str, Any] = {"map_location": "cpu", "pickle_module": _PICKLE}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False  # our unpickler is the restriction (torch's own refuses a pickle_module)
    return torch.load(path, **kwargs)


def _is_torchscript(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(("/constants.pkl", "/code/")) or "/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_checkpoint(path: Union[str, Path]) -> Any:
    """The detection model in ``path`` (fp32, eval mode, on the CPU), as Ultralytics' loader would give it, without
    running code from the file. ModelError for anything that is not a plain Ultralytics checkpoint."""
    import torch

    source = str(path)
    if _is_torchscript(source):
        raise ModelError(f"{source}: a TorchScript archive, not an Ultralytics checkpoint (.pt from training)")
    try:
        ckpt = _torch_load(source)
    except _Missing as exc:
        raise ModelError(f"{source}: needs {exc}, which torch {torch.__version__} here does not have: the file was "
                         f"saved by a newer torch (or Ultralytics) than this device runs; save it again with torch "
                         f"{torch.__version__.split('+')[0]} or older, e.g. load it and torch.save it there") from exc
    except pickle.UnpicklingError as exc:
        raise ModelError(f"{source}: refused: {exc} (only Ultralytics detection checkpoints load here; nothing in "
                         "the file was run)") from exc
    except (RuntimeError, EOFError, ValueError, OSError, TypeError, AttributeError, IndexError, KeyError) as exc:
        why = str(exc).splitlines()[0] if str(exc) and not isinstance(exc, KeyError) else "an unreadable pickle"
        raise ModelError(f"{source}: not a loadable Ultralytics checkpoint: {why}") from exc
    if not isinstance(ckpt, dict):
        raise ModelError(f"{source}: not an Ultralytics checkpoint (a {type(ckpt).__name__}, not a dict)")
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{source}: the checkpoint holds no model")
    return _as_ultralytics_loads_it(model, ckpt)


def _as_ultralytics_loads_it(model: Any, ckpt: Dict[str, Any]) -> Any:
    """What ``ultralytics.nn.tasks.load_checkpoint`` does after unpickling (compatibility fields, eval mode)."""
    import torch
    from ultralytics.cfg import DEFAULT_CFG_DICT

    model = model.float()
    train_args = ckpt.get("train_args")
    model.args = {**DEFAULT_CFG_DICT, **(train_args if isinstance(train_args, dict) else {})}
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    model = model.eval()
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = True
        elif isinstance(m, torch.nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None  # torch 1.11 compatibility
    return model
