"""The user's own data on disk: NumPy ``.npz`` archives and IDX files (the MNIST format).

Both accept one array, split into train/test by the trial seed, or a fixed train/test pair that is
kept as given. ``n_train=0`` / ``n_test=0`` mean "all": every given row, or for a single array a
fifth of the rows held out and every other row for training. Asking for more rows than exist, a
missing or unreadable file, a wrong IDX magic number, or a non-finite value is a ParameterError
naming the dataset, the parameter and what is valid; nothing is silently dropped or clipped.
"""

from __future__ import annotations

import gzip
import math
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchbench import Data, ParameterError, choose_rows, noise_rng

IDX_TYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
"""LeCun's IDX format: two zero bytes, this type byte, the number of dimensions, then big-endian
uint32 sizes and the values, row-major and big-endian."""

_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)


def require_file(path: str, where: str, param: str) -> Path:
    if not path:
        raise ParameterError(f"{where}: parameter {param} is required; give {param}=FILE")
    file = Path(path).expanduser()
    if file.is_dir():
        raise ParameterError(f"{where}: parameter {param}={path!r} is a folder; give {param}=FILE")
    if not file.is_file():
        raise ParameterError(f"{where}: parameter {param}={path!r}: no such file")
    return file


def read_idx(path: str, where: str, param: str) -> np.ndarray:
    """The array stored in an IDX file, gzip-compressed (``.gz``, as MNIST is distributed) or not."""
    raw = require_file(path, where, param).read_bytes()
    prefix = f"{where}: parameter {param}={path!r}"
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except _READ_ERRORS as error:
            raise ParameterError(f"{prefix}: corrupt gzip file ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        magic = int.from_bytes(raw[:4].ljust(4, b"\0"), "big")
        raise ParameterError(
            f"{prefix}: wrong IDX magic number 0x{magic:08x}; an IDX file starts with 0x0000, a type byte "
            f"({', '.join(f'0x{t:02x}' for t in IDX_TYPES)}) and its number of dimensions, e.g. 0x00000803 for images"
        )
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    if ndim > 4:
        raise ParameterError(f"{prefix}: an IDX file of {ndim} dimensions; valid: 1 (labels) to 4 (images, channels)")
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header]) if len(raw) >= header else ()
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: 255 sizes of 2^32 overflow int64
    if len(raw) != expected:
        raise ParameterError(
            f"{prefix}: corrupt IDX file: {len(raw)} bytes, but its header (shape {dims or '?'}, {dtype.name}) "
            f"needs {expected if dims else f'at least {header}'}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def examples(array: np.ndarray, where: str) -> tuple[np.ndarray, tuple[int, ...], bool]:
    """Rows flattened to (n, d) float64, the per-example shape, and whether it is an image.

    (n, d) is a vector; (n, H, W) a grey image, shape (H, W, 1); (n, H, W, C) an image with C channels.
    """
    if not np.issubdtype(array.dtype, np.number) or array.ndim not in (2, 3, 4) or len(array) == 0:
        raise ParameterError(
            f"{where}: found a {array.dtype} array of shape {array.shape}; expected numbers of shape "
            "(n, d), (n, H, W) or (n, H, W, C) with n >= 1"
        )
    values = np.asarray(array, dtype=np.float64).reshape(len(array), -1)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ParameterError(
            f"{where}: {int(bad.sum())} non-finite values (first in row {row}); every value must be finite"
        )
    shape = array.shape[1:] if array.ndim != 3 else (*array.shape[1:], 1)
    return values, tuple(int(s) for s in shape), array.ndim > 2


def labels_for(labels: np.ndarray | None, count: int, where: str) -> np.ndarray | None:
    if labels is None:
        return None
    if labels.ndim != 1 or len(labels) != count:
        raise ParameterError(f"{where}: labels of shape {labels.shape}; expected one per example, shape ({count},)")
    return np.asarray(labels)


def split(
    x: np.ndarray,
    y: np.ndarray | None,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    params: Mapping[str, Any],
    seed: int,
    where: str,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Train and test rows: a seeded split of ``x``, or (``x_test`` given) seeded subsets of each array."""
    n_train, n_test = params["n_train"], params["n_test"]
    if x_test is None:
        n_test = n_test or max(1, round(len(x) / 5))
        n_train = n_train or len(x) - n_test
        if n_train < 1:
            raise ParameterError(f"{where}: n_test={n_test} leaves no training rows of the {len(x)}; lower n_test")
        train, test = choose_rows(len(x), n_train, n_test, seed, where)
        x_test, y_test = x, y
    else:
        train, _ = choose_rows(len(x), n_train or len(x), 0, seed, f"{where} (training array)")
        _, test = choose_rows(len(x_test), 0, n_test or len(x_test), seed, f"{where} (test array)")
    return x[train], None if y is None else y[train], x_test[test], None if y_test is None else y_test[test]


def to_data(
    name: str,
    arrays: tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None],
    wheres: tuple[str, str],
    params: Mapping[str, Any],
    seed: int,
    dequantise: bool,
) -> Data:
    """Every value of the file(s) checked (not only the rows drawn), then split, then uint8 dequantised.

    ``arrays`` is (x, labels, x_test, test labels), ``wheres`` names the source of x and of x_test.
    """
    x, y, x_test, y_test = arrays
    values, shape, is_image = examples(x, wheres[0])
    test_values = None
    if x_test is not None:
        test_values, test_shape, _ = examples(x_test, wheres[1])
        if test_shape != shape:
            raise ParameterError(f"{wheres[1]}: test examples have shape {test_shape} but training examples {shape}")
    train, y_train, test, y_test = split(values, y, test_values, y_test, params, seed, wheres[0])
    if dequantise:
        rng = noise_rng(seed)
        train, test = (train + rng.random(train.shape)) / 256, (test + rng.random(test.shape)) / 256
    return Data(
        name=name,
        train=train,
        test=test,
        shape=shape,
        labels_train=y_train,
        labels_test=y_test,
        is_image=is_image,
        info={"dequantised": dequantise},
    )


def load_npz(params: Mapping[str, Any], seed: int) -> Data:
    """Keys: ``x`` (split by seed) with optional labels ``y``, or ``train`` and ``test`` (kept as given)
    with optional ``y_train`` / ``y_test``. Values are used as given, converted to float64."""
    path = params["path"]
    where = f"dataset 'npz': parameter path={path!r}"
    file = require_file(path, "dataset 'npz'", "path")
    _check_npz_magic(file, where)
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (AttributeError, TypeError, *_READ_ERRORS) as error:
        raise ParameterError(f"{where}: not a readable .npz archive ({type(error).__name__}: {error})") from None
    keys = set(arrays)
    if "x" in keys and not keys & {"train", "test"}:
        x, x_test = arrays["x"], None
        y, y_test = labels_for(arrays.get("y"), len(x), f"{where}, key 'y'"), None
        wheres = (f"{where}, key 'x'", "")
    elif {"train", "test"} <= keys and "x" not in keys:
        x, x_test = arrays["train"], arrays["test"]
        y = labels_for(arrays.get("y_train"), len(x), f"{where}, key 'y_train'")
        y_test = labels_for(arrays.get("y_test"), len(x_test), f"{where}, key 'y_test'")
        wheres = (f"{where}, key 'train'", f"{where}, key 'test'")
    else:
        raise ParameterError(
            f"{where}: has keys {sorted(keys)}; expected 'x' (optional 'y') or 'train' and 'test' "
            "(optional 'y_train', 'y_test')"
        )
    return to_data("npz", (x, y, x_test, y_test), wheres, params, seed, dequantise=False)


NPZ_MAGIC = b"PK\x03\x04"  # a .npz is a zip archive of .npy files
NPY_MAGIC = b"\x93NUMPY"


def _check_npz_magic(file: Path, where: str) -> None:
    """Say what the file is instead: np.load takes anything that is not a zip or .npy for a pickle."""
    with open(file, "rb") as handle:
        head = handle.read(512)
    if head.startswith(NPZ_MAGIC):
        return
    if not head:
        found = "the file is empty"
    elif head.startswith(NPY_MAGIC):
        found = "it is a single .npy array; save it with np.savez(path, x=array)"
    elif head.startswith(b"\x1f\x8b"):
        found = "it is a gzip file"
    elif _is_text(head):
        found = "it is a text file; load it with np.loadtxt and save it with np.savez(path, x=array)"
    else:
        found = f"it starts with the bytes {head[:8].hex(' ')}, an .npz (a zip archive) with 'PK'"
    raise ParameterError(f"{where}: not a readable .npz archive: {found}")


def _is_text(head: bytes) -> bool:
    text = head.decode("utf-8", "ignore")  # 512 bytes may end inside a character
    return bool(text) and all(c.isprintable() or c in "\t\r\n" for c in text)


def load_idx(params: Mapping[str, Any], seed: int) -> Data:
    """IDX images (``path``), optional ``labels``; an optional ``test_path`` / ``test_labels`` pair is the
    fixed test set (MNIST's t10k files). uint8 pixels are dequantised to (v + U[0, 1)) / 256."""
    where = "dataset 'idx'"
    wheres = (f"{where}: parameter path={params['path']!r}", f"{where}: parameter test_path={params['test_path']!r}")
    x = read_idx(params["path"], where, "path")
    y = labels_for(_optional_idx(params, "labels"), len(x), f"{where}: parameter labels={params['labels']!r}")
    x_test = _optional_idx(params, "test_path")
    if x_test is None and params["test_labels"]:
        raise ParameterError(f"{where}: parameter test_labels needs test_path, the test images it labels")
    y_test = None
    if x_test is not None:
        labels = _optional_idx(params, "test_labels")
        y_test = labels_for(labels, len(x_test), f"{where}: parameter test_labels={params['test_labels']!r}")
        if x_test.dtype != x.dtype:
            raise ParameterError(
                f"{wheres[1]}: holds {x_test.dtype} values but path holds {x.dtype}; give files of one type"
            )
    return to_data("idx", (x, y, x_test, y_test), wheres, params, seed, dequantise=x.dtype == np.uint8)


def _optional_idx(params: Mapping[str, Any], param: str) -> np.ndarray | None:
    return read_idx(params[param], "dataset 'idx'", param) if params[param] else None
