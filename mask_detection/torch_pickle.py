"""PyTorch's legacy (pre-1.6, non-zip) ``torch.save`` state dict, read with pickle and NumPy: no torch needed.

Only what a state dict of tensors holds is unpickled (an allow-list of classes); anything else in a pickle could
run arbitrary code, so it is refused. backbones reads the EfficientNet-Lite0 ImageNet weights with it.
"""

import collections
import pickle
import struct
from pathlib import Path

import numpy as np

from .errors import WeightsError

_TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(_TORCH_STORAGE_DTYPES[name])


class _StorageRef:
    """Placeholder for a storage whose bytes come after the pickles."""

    def __init__(self, key, dtype):
        self.key = key
        self.dtype = dtype
        self.data = None  # filled in once the raw storages are read


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self):
        data = self.storage.data
        if not self.size:
            return data[self.offset].copy()
        itemsize = data.dtype.itemsize
        # Strides matter: this file stores some kernels channels-last (ported from TF).
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, size, stride)


class _LegacyUnpickler(pickle.Unpickler):
    _classes = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    }

    def __init__(self, file):
        super().__init__(file)
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) in self._classes:
            return self._classes[(module, name)]
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _StorageType(name)
        # Anything else would be arbitrary code in a pickle: refuse it.
        raise pickle.UnpicklingError(f"unsupported object {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], pid[2]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _StorageRef(key, storage_type.dtype)
        return self.storages[key]


def load_torch_legacy_state_dict(path: Path | str) -> dict[str, np.ndarray]:
    """Read a legacy (pre-1.6, non-zip) `torch.save` state dict as {name: np.ndarray}.

    Layout: magic pickle, protocol pickle, sys_info pickle, the state-dict pickle (tensors point to
    storages by key), a pickled list of storage keys, then per key an int64 element count and the
    raw little-endian data.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"PK":
                raise WeightsError(f"cannot read {path}: a zip-format PyTorch file; expected the legacy format")
            f.seek(0)
            magic = pickle.load(f)
            if magic != _LEGACY_MAGIC:
                raise WeightsError(f"cannot read {path}: not a legacy PyTorch file")
            pickle.load(f)  # protocol version
            sys_info = pickle.load(f)
            if not sys_info.get("little_endian", True):
                raise WeightsError(f"cannot read {path}: big-endian files are not supported")
            unpickler = _LegacyUnpickler(f)
            state = unpickler.load()
            keys = pickle.load(f)
            for key in keys:
                (numel,) = struct.unpack("<q", f.read(8))
                ref = unpickler.storages[key]
                nbytes = numel * ref.dtype.itemsize
                raw = f.read(nbytes)
                if len(raw) != nbytes:
                    raise WeightsError(f"cannot read {path}: file is truncated")
                ref.data = np.frombuffer(raw, dtype=ref.dtype.newbyteorder("<"))
    except WeightsError:
        raise
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {path}") from None
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        struct.error,
        KeyError,
        ValueError,
        AttributeError,
        TypeError,
        IndexError,
    ) as exc:
        raise WeightsError(f"cannot read {path}: not a legacy PyTorch state dict ({exc})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"cannot read {path}: expected a state dict, found {type(state).__name__}")
    return {
        name: (value.to_numpy() if isinstance(value, _TensorRef) else np.asarray(value))
        for name, value in state.items()
    }
