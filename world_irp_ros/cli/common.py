"""What the subcommands share: exit codes, reading input files, opening backends, finding scenes."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from ..backends import DEVICES, NAMES, Backend, create_backend
from ..errors import VerdictCode, WorldIrpError

# Exit statuses of world-irp (also in `world-irp --help`).
EXIT_OK = 0
EXIT_BAD_INPUT = 1        # a file could not be read, decoded or validated
EXIT_USAGE = 2            # argparse: bad command line
EXIT_BACKEND = 3          # the backend could not be created or warmed up
EXIT_NO_GO = 4            # plan: no GO action found


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--device``, which every subcommand that rehearses takes."""
    parser.add_argument("--backend", default="analytic", choices=NAMES, help="forward model (default: analytic)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where the model runs (default: auto)")


T = TypeVar("T")


def bounded(kind: type, low: float, high: float | None = None, strict: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind`` (int or float) from text, finite and at least ``low``
    (above it when ``strict``) and at most ``high``; anything else is a usage error naming it."""
    def parse(text: str):
        try:
            x = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        too_low = x <= low if strict else x < low
        finite = kind is int or math.isfinite(x)  # (an int of 400 digits overflows isfinite)
        if not finite or too_low or (high is not None and x > high):
            bound = f"lie in [{low}, {high}]" if high is not None else f"be {'>' if strict else '>='} {low}"
            raise argparse.ArgumentTypeError(f"must {bound}, got {text}")
        return x
    return parse


class InputError(Exception):
    """A file that cannot be used: ``file``, the ``field`` at fault (may be empty), ``reason``."""

    def __init__(self, file: str, field: str, reason: str, code: VerdictCode = VerdictCode.NO_GO_INVALID_REQUEST):
        super().__init__(f"{file}: {field}: {reason}" if field else f"{file}: {reason}")
        self.file, self.field, self.reason, self.code = file, field, reason, code

    def to_dict(self) -> dict:
        """The error line of ``rehearse --json`` (schemas/result.schema.json, ``failed``)."""
        return {"file": self.file, "error": {"code": self.code.name, "field": self.field, "reason": self.reason}}


class BackendUnavailable(Exception):
    """The backend asked for cannot be created (unknown name, missing dependency, no GPU)."""


def load_input(path: str, parse: Callable[[Any], T]) -> T:
    """Read ``path``, decode its JSON and ``parse`` it; every failure becomes one ``InputError``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise InputError(path, "", f"cannot read: {reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(path, "", f"not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
    except RecursionError:
        raise InputError(path, "", "not usable JSON: nested too deep") from None
    except ValueError:  # the only other decoding error: an integer beyond Python's digit limit
        raise InputError(path, "", f"not usable JSON: a number of more than {sys.get_int_max_str_digits()} "
                                   "digits") from None
    try:
        return parse(data)
    except WorldIrpError as err:
        raise InputError(path, err.field, err.reason, err.code) from None
    # A parser gap must still name the file, not crash (and the other files are still answered).
    except (TypeError, ValueError, KeyError, ArithmeticError, RecursionError) as err:
        raise InputError(path, "", f"invalid: {type(err).__name__}: {err}") from None


def output_folder(path: str | Path, files: Sequence[str]) -> Path:
    """``path`` as a folder (created if missing) where ``files`` can be written, checked before any
    work is done; else ``InputError`` naming it."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(str(folder), "", f"cannot create the output folder: {err.strerror or err}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(str(folder), "", "the output folder is not writable")
    for name in files:
        if (folder / name).is_dir():
            raise InputError(str(folder / name), "", "is a folder, so the output file cannot be written")
    return folder


def open_backend(name: str, device: str, warmup: bool = True) -> Backend:
    """Create (and warm up) backend ``name`` on ``device``, or raise ``BackendUnavailable``."""
    try:
        backend = create_backend(name, device)
        if warmup:
            backend.warmup()
        return backend
    except Exception as err:  # unknown name, import failure, no CUDA, compile failure
        reason = err.reason if isinstance(err, WorldIrpError) else f"{type(err).__name__}: {err}"
        lines = reason.strip().splitlines() or [""]
        reason = lines[0] + (" [...]" if len(lines) > 1 else "")  # one line on the terminal
        raise BackendUnavailable(f"backend {name!r} on device {device!r} is not available: {reason}") from None


def error(message: str) -> None:
    """One line on stderr."""
    print(message, file=sys.stderr, flush=True)


def emit(line: str) -> None:
    """One line on stdout, flushed (JSON Lines consumers read as we go)."""
    print(line, flush=True)


def find_config(relative: str) -> Path:
    """A file under the package's ``config/`` folder: the source tree's (also when running from
    the install tree, whose files link back to it), else ``share/world_irp_ros/config`` of an
    ament prefix, else relative to the current directory."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "config" / relative]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "share" / "world_irp_ros" / "config" / relative)
    candidates.append(Path.cwd() / "config" / relative)
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"config/{relative} not found (looked in: {', '.join(str(c) for c in candidates)})")


def dumps(obj: Any) -> str:
    """Compact JSON with non-finite numbers as null (the output must be strict JSON)."""
    return json.dumps(finite(obj), separators=(",", ":"), allow_nan=False)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj
