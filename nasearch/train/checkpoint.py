"""Training checkpoints: what is in them, atomic saving, and loading that never trusts the file.

A checkpoint is a dict of tensors and primitive containers only, so `torch.load(weights_only=True)`
reads it. Keys:
- ``arch``: the architecture dict (as in an architecture YAML, nc set to the dataset's),
- ``model``: state_dict of the EMA weights (the weights to evaluate, quantize and export),
- ``train_model``: state_dict of the raw training weights (for resuming),
- ``optimizer``, ``scaler``: their state_dicts (``scaler`` None off CUDA),
- ``epoch``: the last finished epoch (0-based), ``iteration``: optimizer steps taken,
- ``ema_updates``, ``best_fitness``, ``metrics`` (of this epoch), ``history`` (one row per epoch),
- ``train_args``: the training settings, ``class_names``, ``rng``: the torch RNG states,
- ``format``, ``version``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from nasearch import atomic
from nasearch.errors import InputError, describe
from nasearch.space import Architecture, build_model

FORMAT = "nasearch-checkpoint"
VERSION = 1
EXPECTED_FILE = "a nasearch checkpoint (a torch.save file loadable with weights_only=True)"
REQUIRED = ("arch", "model")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write via a temp file and a rename, so a crash or kill never leaves a truncated checkpoint."""
    with atomic.staged(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    return Path(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def _unpickling_problem(message: str) -> str:
    """What the weights-only unpickler refused: an object that needs code to load, or garbage."""
    if "Unsupported global" in message:
        words = message.split("Unsupported global:", 1)[-1].split()
        what = words[1] if len(words) > 1 and words[0] == "GLOBAL" else (words[0] if words else "?")
        return f"a pickled object that needs unsafe unpickling ({what[:80]})"
    detail = message.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
    return f"corrupt or foreign data (unpickling failed: {detail[0][:80] if detail else 'unknown'})"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load the raw dict with weights_only=True; anything unreadable is an InputError naming the file."""
    p = Path(path)
    if not p.exists():
        raise InputError(path, "<file>", EXPECTED_FILE, "no such path")
    if p.is_dir():
        raise InputError(path, "<file>", EXPECTED_FILE, "a directory")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(path, "<file>", EXPECTED_FILE, _unpickling_problem(str(exc))) from None
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        zipfile.BadZipFile,
        AttributeError,
        KeyError,
        IndexError,
        TypeError,
    ) as exc:
        raise InputError(path, "<file>", EXPECTED_FILE, _first_line(exc)) from None
    if not isinstance(ckpt, dict):
        raise InputError(path, "<root>", "a mapping with 'arch' and 'model'", describe(ckpt))
    fmt = ckpt.get("format")
    if fmt != FORMAT:
        raise InputError(
            path,
            "format",
            f"{FORMAT!r} (a checkpoint written by nasearch)",
            "no format field" if fmt is None else describe(fmt),
        )
    version = ckpt.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise InputError(path, "version", f"a checkpoint version 1..{VERSION}", describe(version))
    for key in REQUIRED:
        if key not in ckpt:
            raise InputError(
                path,
                key,
                "present (the architecture and the weights)",
                f"a checkpoint with keys {sorted(map(str, ckpt))}"[:160],
            )
    return ckpt


def checkpoint_arch(ckpt: dict[str, Any], path: str | Path) -> Architecture:
    """The checkpoint's architecture, validated like an architecture file (errors point into `arch.`)."""
    try:
        return Architecture.from_dict(ckpt["arch"], str(path))
    except InputError as err:
        raise InputError(
            path, f"arch.{err.path}" if err.path != "<root>" else "arch", err.expected, err.found
        ) from None


def state_dict_of(ckpt: dict[str, Any], key: str, path: str | Path) -> dict[str, torch.Tensor]:
    weights = ckpt.get(key)
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise InputError(path, key, "a state_dict (names to tensors)", describe(weights))
    return weights


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path, key: str) -> None:
    """Strict load; a mismatch is reported as bad input (the weights do not fit the architecture)."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [k for k in own if k in weights and own[k].shape != weights[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} of another shape (e.g. {k}: {tuple(weights[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise InputError(path, key, "weights that fit the architecture in 'arch'", "; ".join(parts))
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise InputError(
                path,
                f"{key}.{name}",
                "finite values (a diverged or damaged checkpoint is refused)",
                f"{bad} NaN or Inf of {tensor.numel()}",
            )
    model.load_state_dict(weights)


def load_checkpoint(path: str | Path, key: str = "model") -> tuple[torch.nn.Module, Architecture, dict[str, Any]]:
    """(detector in eval mode with the checkpoint's EMA weights, its architecture, the raw dict)."""
    ckpt = read_checkpoint(path)
    arch = checkpoint_arch(ckpt, path)
    model = build_model(arch)
    load_weights(model, state_dict_of(ckpt, key, path), path, key)
    return model.eval(), arch, ckpt


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
