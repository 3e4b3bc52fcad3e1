"""Safe checkpoints: one safetensors file each, JSON metadata in its header, no pickle.

A checkpoint holds tensors under prefixes (`model.`, `optim.`, `extra.`) and a JSON
document (config, counters, optimizer hyperparameters, RNG and env snapshot values).
Loading only parses the safetensors header (JSON) and raw tensor bytes, so a file crafted
to run code when unpickled is simply not a valid checkpoint. Writes go to a temporary file
that is fsynced and renamed over the target, so a crash mid-save leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from actorcritic.errors import CheckpointError

FORMAT = "actorcritic-checkpoint-v1"
SUFFIX = ".safetensors"


@dataclass
class Checkpoint:
    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` so that readers see the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    header = {"format": FORMAT, "json": json.dumps(meta)}
    write_atomic(Path(path), st_save(clean, metadata=header))


def _read_header(data: bytes, path: Path) -> dict:
    if len(data) < 8:
        raise CheckpointError(f"checkpoint {path} is truncated or not a checkpoint "
                              f"({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {path} is not a safetensors file (bad header); "
                              f"only actorcritic .safetensors checkpoints can be loaded") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} was not written by actorcritic "
                              f"(format {meta.get('format')!r})")
    return meta


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file; every failure is one CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror}") from None
    meta = _read_header(data, path)
    try:
        tensors = st_load(data)
        doc = json.loads(meta["json"])
    except Exception as exc:  # safetensors raises its own error types for bad bytes
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: "
                              f"{str(exc).splitlines()[0]}") from None
    return Checkpoint(path, tensors, doc)


# ---------------------------------------------------------------- optimizer state

def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str = "optim"
                      ) -> tuple[dict[str, torch.Tensor], dict]:
    """The optimizer's tensors under `prefix.` and its scalars and hyperparameters (JSON).
    A learner with several optimizers (SAC: actor, critics, temperature) gives each its own
    prefix."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


# How an optimizer computes its step, not what it has learned: the optimizer being loaded
# keeps its own (a checkpoint of the per-tensor loop must not turn a multi-tensor optimizer
# back into the loop, nor the other way round).
KERNEL_KEYS = ("foreach", "fused", "capturable", "differentiable")


def load_optimizer(opt: torch.optim.Optimizer, ckpt: Checkpoint, prefix: str = "optim",
                   meta_key: str = "optimizer") -> None:
    """The checkpoint's optimizer state and hyperparameters, keeping `opt`'s kernel choices
    (`prefix` and `meta_key`: where `optimizer_tensors` put them)."""
    kernels = [{k: g[k] for k in KERNEL_KEYS if k in g} for g in opt.param_groups]
    state: dict[int, dict[str, Any]] = {}
    for key, value in ckpt.section(prefix).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    meta = ckpt.meta[meta_key]
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    for group, kernel in zip(opt.param_groups, kernels, strict=True):
        group.update(kernel)


# ---------------------------------------------------------------- model state

def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors under the checkpoint's `model.` prefix."""
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def load_model_exact(model: torch.nn.Module, ckpt: Checkpoint) -> None:
    """Load every tensor; any mismatch is one clear error naming the tensors."""
    saved = ckpt.section("model")
    own = model.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    shape = sorted(k for k in set(own) & set(saved) if own[k].shape != saved[k].shape)
    if missing or unexpected or shape:
        parts = []
        if shape:
            parts.append("shape differs for " + ", ".join(
                f"{k} (checkpoint {tuple(saved[k].shape)}, model {tuple(own[k].shape)})"
                for k in shape[:4]))
        if missing:
            parts.append("missing " + ", ".join(missing[:4]))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:4]))
        raise CheckpointError(f"checkpoint {ckpt.path} is from a different model: "
                              + "; ".join(parts))
    model.load_state_dict(saved)


def load_model_partial(model: torch.nn.Module, ckpt: Checkpoint) -> tuple[list[str], list[str]]:
    """Load the tensors whose names and shapes match; return (loaded, skipped) names."""
    saved = ckpt.section("model")
    own = model.state_dict()
    loaded = [k for k in own if k in saved and saved[k].shape == own[k].shape]
    skipped = sorted(set(own) - set(loaded)) + sorted(set(saved) - set(own))
    if not loaded:
        raise CheckpointError(f"checkpoint {ckpt.path} is from a different model: none of its "
                              f"{len(saved)} tensors matches this model by name and shape "
                              f"(model: {', '.join(list(own)[:3])}, ...; checkpoint: "
                              f"{', '.join(list(saved)[:3]) or 'no model tensors'})")
    own.update({k: saved[k] for k in loaded})
    model.load_state_dict(own)
    return loaded, skipped


# ---------------------------------------------------------------- run directories

class CheckpointDir:
    """RUN_DIR/checkpoints: periodic `update_<n>`, `best` and `final` files."""

    def __init__(self, run_dir: Path, keep: int = 3):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep

    def path(self, name: str) -> Path:
        return self.dir / f"{name}{SUFFIX}"

    def save(self, name: str, tensors: dict[str, torch.Tensor], meta: dict) -> Path | None:
        """Save; on a disk error keep the previous file, report and return None."""
        target = self.path(name)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            save_checkpoint(target, tensors, meta)
        except OSError as exc:
            import sys

            print(f"actorcritic: warning: checkpoint {target} could not be written "
                  f"({exc.strerror or exc}); the previous checkpoint is kept", file=sys.stderr)
            return None
        if name.startswith("update_"):
            self._prune()
        return target

    def _prune(self) -> None:
        periodic = sorted(self.dir.glob(f"update_*{SUFFIX}"))
        for old in periodic[:-self.keep]:
            try:
                old.unlink(missing_ok=True)
            except OSError:  # not ours to remove (a directory, a read-only file): keep it
                pass

    def latest(self) -> Path | None:
        """The checkpoint furthest into training (for resume)."""
        best_path, best_key = None, None
        for p in self.dir.glob(f"*{SUFFIX}"):
            if p.name.startswith("best"):
                continue
            try:
                with open(p, "rb") as fh:
                    head = fh.read(8)
                    head += fh.read(struct.unpack("<Q", head)[0]) if len(head) == 8 else b""
                meta = _read_header(head, p)
                updates = json.loads(meta["json"])["counters"]["updates"]
            except (CheckpointError, KeyError, ValueError, OSError, struct.error):
                continue
            key = (updates, p.name.startswith("final"))
            if best_key is None or key > best_key:
                best_path, best_key = p, key
        return best_path


def resolve_checkpoint(target: str | Path) -> Path:
    """A checkpoint file, a zoo agent (its directory or its name), or a run dir (its best,
    else final, else newest periodic)."""
    from actorcritic import zoo

    target = Path(target)
    if target.is_dir() and (target / zoo.AGENT_FILE).is_file():
        return target / zoo.AGENT_FILE
    if not target.exists() and zoo.find(str(target)) is not None:
        return zoo.find(str(target))
    if target.is_dir():
        ckdir = CheckpointDir(target)
        for name in ("best", "final"):
            if ckdir.path(name).is_file():
                return ckdir.path(name)
        latest = ckdir.latest()
        if latest is None:
            raise CheckpointError(f"no checkpoint found in {target}/checkpoints")
        return latest
    if not target.exists():
        raise CheckpointError(f"{target} does not exist (give a run dir, a checkpoint file or "
                              f"a zoo agent: {', '.join(zoo.names()) or 'none shipped'})")
    return target
