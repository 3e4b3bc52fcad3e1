"""ONNX export: one acting step of a trained agent, checked against ONNX Runtime.

The graph acts for a batch of N observations (a dynamic axis named `batch`):

  inputs   obs          the observations exactly as the env gives them: uint8 [N, C, H, W]
                        frames for Atari (the /255 is inside the graph), float32 [N, D]
                        vectors otherwise (the dtype of the observation space)
           first        recurrent agents only: bool [N], True where obs is the first
                        observation of an episode; that env's state is zeroed before the
                        step, as in training and evaluation
           state_in_<i> recurrent agents only: float32 [N, core_size], in the order of
                        `model.initial_state` (LSTM: h, c; with separate actor and critic
                        trunks the actor's first); zeros at the start
  outputs  logits       Discrete and MultiDiscrete (the sub-actions' logits concatenated), or
           mean, log_std  Box: the Gaussian's parameters [N, D]
           value        float32 [N]
           action       the greedy action, what `actorcritic eval` sends to env.step: the
                        argmax (int64 [N]; [N, K] for MultiDiscrete) or the mean clipped
                        to the Box
           state_out_<i> recurrent agents only: the state to pass as state_in_<i> next step

SAC and TD3 agents export their deterministic actor: input `obs`, outputs `value` (the lower
of the twin critics' values of the action) and `action` (SAC: the squashed mean; TD3: the
actor's output; both scaled to the Box).

The graph is written by PyTorch's torch.export-based exporter (`dynamo=True`) at opset 18
by default. Before the file is written, the graph runs in ONNX Runtime on real observations
of the agent's env, next to the torch model, carrying the recurrent state over several steps
and through a reset; a graph that differs is refused and nothing is written.
Agents whose encoder runs in bfloat16 (`model.precision`) are exported in float32 (their
parameters are float32; ONNX Runtime has no bfloat16 CPU convolutions), which the export
reports.
"""

from __future__ import annotations

import copy
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from actorcritic import __version__
from actorcritic.config import Config
from actorcritic.errors import UserError
from actorcritic.models.actor_critic import ActorCritic
from actorcritic.run.checkpoint import write_atomic

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 18, 23, 18  # what torch 2.13's exporter writes natively
INSTALL_HINT = "pip install -e '.[export]'"
ATOL = RTOL = 1e-5  # ONNX Runtime vs torch: |ort - torch| <= ATOL + RTOL * |torch|


class ExportError(UserError):
    """A model, opset or output file that cannot be exported faithfully."""


@dataclass
class ExportResult:
    path: Path
    opset: int
    inputs: list[str]          # 'name dtype [dims]'
    outputs: list[str]
    state: list[str]           # what state_in_<i> / state_out_<i> is
    observations: int          # real observations the graph was checked on
    max_abs_diff: dict[str, float]
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the CLI prints."""
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in self.max_abs_diff.items())
        out = [f"wrote {self.path} (ONNX opset {self.opset}, "
               f"{self.path.stat().st_size / 1e6:.2f} MB)" + (f" from {self.source}"
                                                              if self.source else ""),
               "  inputs:  " + ", ".join(self.inputs),
               "  outputs: " + ", ".join(self.outputs)]
        if self.state:
            out.append("  state:   " + ", ".join(f"{i} = {n}" for i, n in enumerate(self.state))
                       + " (zeros at the start; first=True zeroes an env's state)")
        out.append(f"  checked against torch with ONNX Runtime on {self.observations} real "
                   f"observations: max abs diff {diffs}")
        return out + [f"  note: {n}" for n in self.notes]


def require_onnx():
    """Import onnx, onnxscript (the exporter needs it) and onnxruntime, or say how."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ONNX export needs onnx, onnxscript and onnxruntime "
                          f"({exc.name} is not installed): {INSTALL_HINT}") from None
    return onnx, onnxruntime


def state_names(model: ActorCritic) -> list[str]:
    """What each state tensor is, e.g. ['actor lstm h', 'actor lstm c', ...]."""
    trunks = [("shared" if model.critic_trunk is None else "actor", model.actor_trunk)]
    if model.critic_trunk is not None:
        trunks.append(("critic", model.critic_trunk))
    names = []
    for role, trunk in trunks:
        kind = getattr(trunk.core, "kind", None)
        if kind is not None:
            names += [f"{role} {kind} {part}" for part in (("h", "c") if kind == "lstm" else "h")]
    return names


class OneStep(nn.Module):
    """The model for one step: (obs [N, ...], [first [N], *state]) -> the graph's outputs."""

    def __init__(self, model: ActorCritic, action_space: gym.Space):
        super().__init__()
        self.model = model
        self.num_state = len(model.initial_state(1))
        self.box = isinstance(action_space, gym.spaces.Box)
        if self.box:
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32)
                                 .flatten())
            self.register_buffer("high", torch.as_tensor(action_space.high,
                                                         dtype=torch.float32).flatten())
        policy = ["mean", "log_std"] if self.box else ["logits"]
        self.input_names = ["obs"] + (["first"] if self.num_state else []) + [
            f"state_in_{i}" for i in range(self.num_state)]
        self.output_names = policy + ["value", "action"] + [
            f"state_out_{i}" for i in range(self.num_state)]

    def forward(self, obs: torch.Tensor, *recurrent: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if recurrent:
            first, state = recurrent[0], tuple(recurrent[1:])
        else:  # a feedforward model ignores `first`
            first, state = torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device), ()
        params, value, new_state = self.model(obs.unsqueeze(0), first.unsqueeze(0), state)
        action, _ = self.model.policy.sample_with_logp(params[0], greedy=True)
        if self.box:
            action = torch.minimum(torch.maximum(action, self.low), self.high)
            policy = params[0].chunk(2, -1)
        else:
            policy = (params[0],)
        return (*policy, value[0], action, *new_state)

    def example_inputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.num_state:
            return (obs,)
        n = obs.shape[0]
        first = torch.zeros(n, dtype=torch.bool)
        return (obs, first, *self.model.initial_state(n))


class DeterministicActorStep(nn.Module):
    """SAC's or TD3's model for one step: obs [N, D] -> (value [N], action [N, A])."""

    num_state = 0
    box = True
    input_names = ["obs"]
    output_names = ["value", "action"]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        action, value = self.model(obs)
        return value, action

    def example_inputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (obs,)


def one_step(model: nn.Module, action_space: gym.Space) -> OneStep | DeterministicActorStep:
    """The graph's module: the acting step of an ActorCritic, or an off-policy actor's."""
    from actorcritic.models.off_policy import OffPolicyActorCritic

    if isinstance(model, OffPolicyActorCritic):
        return DeterministicActorStep(model)
    return OneStep(model, action_space)


def float32_copy(model: ActorCritic) -> tuple[ActorCritic, list[str]]:
    """An eval-mode copy whose encoders run in float32 (bfloat16 autocast off)."""
    model = copy.deepcopy(model).eval()
    notes = []
    for trunk in (model.actor_trunk, model.critic_trunk):
        if trunk is not None and trunk.bfloat16:
            trunk.bfloat16 = False
            notes = [f"model.precision={trunk.precision_setting} runs the encoder in bfloat16 "
                     "here; the graph computes in float32 (the parameters are float32), so it "
                     "differs from bfloat16 acting by bfloat16 rounding"]
    return model, notes


def to_onnx(step: OneStep | DeterministicActorStep, obs_space: gym.Space, opset: int, metadata: dict[str, str]) -> bytes:
    """Export `step` for a dynamic batch; return the serialized ModelProto."""
    obs = torch.as_tensor(np.zeros((2, *obs_space.shape), dtype=obs_space.dtype))
    args = step.example_inputs(obs)
    batch = torch.export.Dim("batch")
    dynamic = ({0: batch}, tuple({0: batch} for _ in args[1:])) if len(args) > 1 else ({0: batch},)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" and the like
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                step, args, dynamo=True, opset_version=opset, input_names=step.input_names,
                output_names=step.output_names, dynamic_shapes=dynamic, verbose=False,
                optimize=True, external_data=False)
    except Exception as exc:  # the exporter's own error types; one line for the user
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        line = (re.sub(r"\x1b\[[0-9;]*m", "", str(root)).strip().splitlines() or [""])[0]
        raise ExportError(f"this model cannot be exported to ONNX ({type(root).__name__}: "
                          f"{line})") from None
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    proto.doc_string = __doc__.split("\n\n", 1)[1]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def make_session(data: bytes, opset: int):
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own error types
        raise ExportError(f"ONNX Runtime {ort.__version__} cannot load the opset {opset} graph: "
                          f"{str(exc).strip().splitlines()[0]}") from None


def _compare(name: str, got: np.ndarray, want: np.ndarray, logits: np.ndarray | None,
             diffs: dict[str, float]) -> None:
    """Record the max abs diff of one output; raise ExportError where it is too large."""
    if not np.isfinite(want).all():
        raise ExportError(f"the model's {name} is not finite on real observations (a broken "
                          f"checkpoint?); nothing was written")
    if got.shape != want.shape:
        raise ExportError(f"ONNX Runtime gives {name} of shape {got.shape}, torch "
                          f"{want.shape}; nothing was written")
    if name == "action" and logits is not None:  # discrete: equal, unless a near-tie
        rows = np.nonzero((got != want).reshape(len(want), -1).any(-1))[0]
        if rows.size and (want.ndim > 1 or np.abs(
                logits[rows, got[rows]] - logits[rows, want[rows]]).max() > 2 * ATOL):
            raise ExportError("ONNX Runtime's greedy action differs from torch's on real "
                              "observations; nothing was written")
        return
    diff = np.abs(got.astype(np.float64) - want)
    diffs[name] = max(diffs.get(name, 0.0), float(diff.max(initial=0.0)))
    if (diff > ATOL + RTOL * np.abs(want)).any():
        raise ExportError(f"ONNX Runtime's {name} differs from torch's by {diff.max():.2e} on "
                          f"real observations (tolerance {ATOL:g}); this model cannot be "
                          f"exported faithfully; nothing was written")


def check_against_runtime(session, step: OneStep | DeterministicActorStep, cfg: Config, steps: int = 8,
                          num_envs: int = 2, seed: int = 12345) -> tuple[int, dict[str, float]]:
    """Run torch and ONNX Runtime side by side on `steps` batches of real observations.

    Each carries its own recurrent state; halfway env 0 is flagged as an episode start.
    The envs are stepped with torch's greedy action. Returns (observations, max abs diffs).
    """
    from actorcritic.envs import make_vector_env

    envs = make_vector_env(cfg.env, num_envs=num_envs, seed=seed, mode="eval")
    rows = envs.num_envs  # num_envs, or games x players (env.players): the graph acts per row
    diffs: dict[str, float] = {}
    try:
        obs = envs.reset(seed=seed)
        first = np.ones(rows, dtype=bool)
        reset_next = np.zeros(rows, dtype=bool)
        state = [s.numpy() for s in step.model.initial_state(rows)]
        ort_state = list(state)
        for t in range(steps):
            if t == steps // 2:
                first[0] = True
            recurrent = [first, *state] if step.num_state else []
            with torch.no_grad():
                want = [w.numpy() for w in step(torch.as_tensor(obs),
                                                *map(torch.as_tensor, recurrent))]
            feed = dict(zip(step.input_names, [obs, first, *ort_state]))
            try:
                got = session.run(step.output_names, feed)
            except Exception as exc:  # onnxruntime's own error types
                raise ExportError(f"ONNX Runtime cannot run the graph on real observations: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
            logits = None if step.box else want[0]
            for name, g, w in zip(step.output_names, got, want):
                _compare(name, g, w, logits, diffs)
            k = len(step.output_names) - step.num_state
            state, ort_state = want[k:], got[k:]
            obs, _, term, trunc, _ = envs.step(want[k - 1])
            first, reset_next = reset_next, ~reset_next & (term | trunc)
    finally:
        envs.close()
    return steps * rows, diffs


_DTYPES = {"float": "float32", "double": "float64", "float16": "float16"}


def describe(session) -> tuple[list[str], list[str]]:
    """'name dtype [dims]' for each input and output of the graph."""
    def one(arg) -> str:
        dims = ", ".join("N" if not isinstance(d, int) else str(d) for d in arg.shape)
        dtype = arg.type.removeprefix("tensor(").rstrip(")")
        return f"{arg.name} {_DTYPES.get(dtype, dtype)} [{dims}]"
    return [one(a) for a in session.get_inputs()], [one(a) for a in session.get_outputs()]


def export_model(model: ActorCritic, cfg: Config, obs_space: gym.Space, action_space: gym.Space,
                 out: str | Path, opset: int = DEFAULT_OPSET, source: str = "") -> ExportResult:
    """Export `model` (trained on `cfg`'s env) to the ONNX file `out`, checked first."""
    require_onnx()
    out = check_output(out, opset)
    model, notes = float32_copy(model)
    step = one_step(model, action_space).eval()
    names = state_names(model)
    metadata = {"actorcritic.version": __version__, "actorcritic.env_id": cfg.env.id,
                "actorcritic.observation": f"{obs_space.dtype} {tuple(obs_space.shape)}",
                "actorcritic.action_space": str(action_space), "actorcritic.source": source,
                "actorcritic.state": "; ".join(f"state_in_{i}: {n}" for i, n in enumerate(names))}
    data = to_onnx(step, obs_space, opset, metadata)
    session = make_session(data, opset)
    observations, diffs = check_against_runtime(session, step, cfg)
    try:
        write_atomic(out, data)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None
    inputs, outputs = describe(session)
    return ExportResult(out, opset, inputs, outputs, names, observations, diffs, source, notes)


def check_output(out: str | Path, opset: int) -> Path:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset {opset} is not supported: use {MIN_OPSET} to {MAX_OPSET} "
                          f"(torch's ONNX exporter; default {DEFAULT_OPSET})")
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"cannot write {out}: it is a directory; give a file name like "
                          f"{out / 'agent.onnx'}")
    if not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: directory {out.parent} does not exist")
    return out


def export_checkpoint(target: str | Path, out: str | Path,
                      opset: int = DEFAULT_OPSET) -> ExportResult:
    """Export a run dir's best checkpoint (or a checkpoint file) to the ONNX file `out`."""
    from actorcritic.custom import checkpoint_config
    from actorcritic.envs import spaces_for
    from actorcritic.models.actor_critic import build_model
    from actorcritic.run.checkpoint import load_checkpoint, load_model_exact, resolve_checkpoint

    check_output(out, opset)
    ckpt = load_checkpoint(resolve_checkpoint(target))
    cfg = checkpoint_config(ckpt)  # refuses a function env factory it names
    require_onnx()
    obs_space, action_space = spaces_for(cfg)
    model = build_model(cfg, obs_space, action_space)
    load_model_exact(model, ckpt)
    return export_model(model, cfg, obs_space, action_space, out, opset, str(ckpt.path))
