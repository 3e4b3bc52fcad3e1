"""Configuration: four dataclass sections loaded from YAML presets and `--set` overrides.

Every field carries its own validation rule and one-line help in its metadata, so the
loader, the error messages and the documentation site's configuration reference all come
from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from actorcritic import registry
from actorcritic.errors import ConfigError
from actorcritic.importpath import is_import_path


def _f(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
       max: float | None = None, min_exclusive: bool = False, import_path: bool = False) -> Any:
    """A config field with its help text and validation rule (import_path: a
    `module:qualname` naming the user's own code is valid besides the choices)."""
    meta = {"help": help, "choices": choices, "min": min, "max": max,
            "min_exclusive": min_exclusive, "import_path": import_path}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class EnvConfig:
    id: str = _f("CartPole-v1", "Gymnasium/EnvPool environment id (module:EnvId-v0 imports "
                 "module first; module:function names your own env factory, docs/CUSTOM.md)")
    num_envs: int = _f(8, "parallel environments per learner (or per A3C worker)", min=1)
    backend: str = _f("sync", "vector backend (vector: Gymnasium's own NumPy-vectorized env, "
                      "CartPole-v1)", choices=("sync", "async", "vector", "envpool",
                                               "ale_vector", "gfootball"))
    eval_backend: str = _f("auto", "backend for evaluation and video (auto: sync when Gymnasium "
                           "knows the id, else the training backend)",
                           choices=("auto", "sync", "async", "envpool"))
    max_episode_steps: int = _f(0, "time limit per episode (0: the env's own)", min=0)
    num_threads: int = _f(0, "emulator threads of the envpool and ale_vector backends (0: one "
                          "per core, shared out between algo.processes)", min=0)
    hide_obs: list = _f([], "indices of vector observation entries hidden from the agent "
                        "(a partially observable task)")
    step_timeout: float = _f(60.0, "seconds an async env worker may take for one step", min=0,
                             min_exclusive=True)
    check: bool = _f(True, "check the env's spaces, dtypes and API at start-up")
    kwargs: dict = _f({}, "extra keyword arguments for the env constructor")
    # Atari (DeepMind preprocessing); ignored by other envs.
    frame_skip: int = _f(4, "Atari: frames per action (max-pool over the last 2)", min=1)
    frame_stack: int = _f(4, "Atari: stacked frames", min=1)
    resize: list = _f([84, 84], "Atari: [height, width] of the resized frame")
    crop: list = _f([], "Atari: [top, bottom, left, right] pixels cut before resizing")
    grayscale: bool = _f(True, "Atari: grayscale frames")
    noop_max: int = _f(30, "Atari: random no-ops at reset", min=0)
    fire_reset: bool = _f(True, "Atari: press FIRE at reset where the game needs it")
    episodic_life: bool = _f(True, "Atari: a lost life ends the training episode")
    clip_rewards: bool = _f(True, "Atari: clip training rewards to {-1, 0, 1}")
    sticky_actions: float = _f(0.0, "Atari: repeat-action probability", min=0, max=1)
    # Google Research Football; ignored by other envs.
    representation: str = _f("simple115v2", "football: observation representation (gfootball "
                             "backend)", choices=("simple115v2", "simple115", "extracted", "pixels",
                                                  "pixels_gray"))
    time_penalty: float = _f(0.0, "football: reward subtracted every step", min=0)
    checkpoint_reward: bool = _f(False, "football: add the official checkpoint reward")
    scenario_weights: list = _f([], "football, several scenarios in env.id: the share of "
                                "each in the per-episode draw (empty: equal shares)")
    scenario_curriculum: bool = _f(False, "football, several scenarios in env.id: scale each "
                                   "scenario's share by max(1 - its win rate over its last "
                                   "100 episodes, 0.1)")
    players: int = _f(1, "football: left players the agent controls, one policy shared by all: "
                      "each player is a row of the batch with its own observation (so "
                      "env.num_envs games give env.num_envs x players rows; run.total_steps "
                      "counts game steps); needs the official engine, env.backend=gfootball",
                      min=1)


@dataclass
class ModelConfig:
    encoder: str = _f("auto", "observation encoder (auto: mlp for vectors, nature_cnn for "
                      "images; or module:Class, your own nn.Module, docs/CUSTOM.md)",
                      choices=("auto", "mlp", "nature_cnn", "small_cnn"), import_path=True)
    encoder_kwargs: dict = _f({}, "keyword arguments of an encoder given as module:Class, "
                              "built as Class(observation_space, **encoder_kwargs)")
    hidden_sizes: list = _f([64, 64], "MLP hidden layer sizes")
    activation: str = _f("tanh", "MLP activation", choices=("tanh", "relu"))
    shared_trunk: bool = _f(True, "actor and critic share one encoder/core (false: two networks)")
    core: str = _f("none", "recurrent core after the encoder", choices=("none", "lstm", "gru"))
    core_size: int = _f(128, "hidden units of the recurrent core", min=1)
    cnn_channels: int = _f(32, "small_cnn: channels per conv layer", min=1)
    cnn_dense: int = _f(128, "small_cnn: units of the dense layer after the convolutions", min=1)
    normalize_obs: bool = _f(False, "normalize vector observations by running mean and "
                             "variance (statistics are part of the model: saved, frozen when "
                             "evaluating, exported)")
    obs_clip: float = _f(10.0, "with model.normalize_obs: clip normalized observations to "
                         "[-obs_clip, obs_clip]", min=0, min_exclusive=True)
    precision: str = _f("auto", "arithmetic of the CNN encoder (bfloat16: its convolutions "
                        "and dense layer run under autocast; parameters, heads, losses and "
                        "the optimizer stay float32; auto: bfloat16 for the built-in CNNs on "
                        "a CPU with AMX or AVX512-BF16, else float32; named at start); for "
                        "SAC and TD3, bfloat16 computes every matrix product of the run in "
                        "bfloat16 on the CPU (float32 inputs, outputs and sums; auto: "
                        "float32)",
                        choices=("auto", "float32", "bfloat16"))


@dataclass
class AlgoConfig:
    name: str = _f("a2c", "algorithm (a3c: Hogwild workers stepping one shared optimizer; "
                   "a3c_ps: A3C with a parameter server, workers on Ray send gradients that "
                   "one learner applies as they arrive)",
                   choices=tuple(registry.ALGORITHMS))
    lr: float = _f(7e-4, "learning rate", min=0, min_exclusive=True)
    lr_schedule: str = _f("constant", "learning-rate schedule: linear decays to 0 at total_steps; "
                          "log10 is lr / log10(0.01 * episode + 10)",
                          choices=("constant", "linear", "log10"))
    optimizer: str = _f("rmsprop", "optimizer (rmsprop_tf: TensorFlow's RMSprop, eps inside the "
                        "square root, square average starting at 1)",
                        choices=("rmsprop", "rmsprop_tf", "adam"))
    rms_alpha: float = _f(0.99, "RMSprop smoothing constant", min=0, max=1)
    optim_eps: float = _f(1e-5, "optimizer epsilon", min=0, min_exclusive=True)
    gamma: float = _f(0.99, "discount factor", min=0, max=1)
    gae_lambda: float = _f(1.0, "GAE lambda (1: plain n-step returns)", min=0, max=1)
    num_steps: int = _f(5, "rollout length per env before each update (A3C: t_max)", min=1)
    ent_coef: float = _f(0.01, "entropy bonus coefficient", min=0)
    vf_coef: float = _f(0.5, "value loss coefficient", min=0)
    max_grad_norm: float = _f(0.5, "gradient-norm clip (0: off)", min=0)
    normalize_advantage: bool = _f(False, "normalize advantages per batch (PPO: per minibatch)")
    normalize_reward: bool = _f(False, "divide rewards by a running estimate of the discounted "
                                "return's standard deviation (A2C/PPO on one process)")
    reward_clip: float = _f(10.0, "with algo.normalize_reward: clip the scaled rewards to "
                            "[-reward_clip, reward_clip]", min=0, min_exclusive=True)
    epochs: int = _f(4, "PPO: passes over each rollout", min=1)
    minibatches: int = _f(4, "PPO: minibatches per pass (recurrent models: of whole env "
                          "sequences, so at most env.num_envs)", min=1)
    clip_coef: float = _f(0.2, "PPO: clip range of the probability ratio", min=0,
                          min_exclusive=True)
    clip_schedule: str = _f("constant", "PPO: clip-range schedule (linear: decays to 0 at "
                            "total_steps, as the learning rate)", choices=("constant", "linear"))
    clip_value_loss: bool = _f(False, "PPO: clip the value change to clip_coef around the "
                               "acting value (the value loss is the larger of both errors)")
    target_kl: float = _f(0.0, "PPO: stop a rollout's epochs once a minibatch's approximate KL "
                          "exceeds 1.5 x this (0: off)", min=0)
    reward_scale: float = _f(1.0, "multiply rewards by this for learning (returns, values, "
                             "losses); episode statistics stay raw", min=0, min_exclusive=True)
    reuse_acting_graph: str = _f("off", "accelerator, A2C and A3C workers: backpropagate through "
                                 "the forward passes made while acting instead of recomputing "
                                 "them (same gradient, one forward pass less; CNNs replay their "
                                 "recorded layer outputs as one batch; auto: on for feedforward "
                                 "CNNs; the Atari A2C/A3C presets turn it on)",
                                 choices=("auto", "on", "off"))
    num_workers: int = _f(2, "A3C/IMPALA worker processes; A2C/PPO on Ray: actors that each "
                          "step a slice of the envs (at most env.num_envs)", min=1)
    processes: int = _f(1, "A2C: processes that each step env.num_envs / processes of the envs, "
                        "act and backpropagate at once; their gradients are summed before the "
                        "one optimizer step, so the update is the same, on more cores",
                        min=1)
    overlap: bool = _f(False, "A2C: double-buffered rollouts: a second thread collects the next "
                       "rollout while the update runs, so emulation, acting and learning "
                       "overlap; the policy that acts (and each gradient) lags one update "
                       "behind the parameters the gradient is applied to")
    shared_lock: bool = _f(False, "A3C: lock the shared optimizer step")
    vtrace_rho: float = _f(1.0, "IMPALA: clip of importance weights for the value targets", min=0,
                           min_exclusive=True)
    vtrace_c: float = _f(1.0, "IMPALA: clip of the trace coefficients", min=0, min_exclusive=True)
    learner_batch: int = _f(1, "IMPALA: trajectories (num_steps x env.num_envs each) per learner "
                            "update", min=1)
    # Off-policy (SAC, TD3): names as rl-baselines3-zoo's hyperparameter files write them.
    buffer_size: int = _f(1_000_000, "SAC/TD3: transitions the replay buffer holds (the oldest "
                          "are overwritten)", min=1)
    learning_starts: int = _f(10_000, "SAC/TD3: env steps of uniform random actions before the "
                              "first gradient step", min=0)
    batch_size: int = _f(256, "SAC/TD3: transitions per gradient step", min=1)
    tau: float = _f(0.005, "SAC/TD3: Polyak coefficient of the target networks' update", min=0,
                    max=1, min_exclusive=True)
    train_freq: int = _f(1, "SAC/TD3: vector-env steps between rounds of gradient steps",
                         min=1)
    gradient_steps: int = _f(1, "SAC/TD3: gradient steps per round", min=1)
    policy_delay: int = _f(0, "SAC/TD3: critic updates per actor update (TD3 also updates its "
                           "targets then; 0: 1 for SAC, 2 for TD3)", min=0)
    init_alpha: float = _f(1.0, "SAC: initial entropy temperature", min=0, min_exclusive=True)
    autotune_alpha: bool = _f(True, "SAC: tune the temperature toward algo.target_entropy "
                              "(false: keep algo.init_alpha)")
    target_entropy: float | None = _f(None, "SAC: entropy the temperature steers toward "
                                      "(null: -dim of the action space)")
    exploration_noise: float = _f(0.1, "TD3: std of the Gaussian noise added to actions while "
                                  "training, in units of half the Box's width", min=0)
    target_policy_noise: float = _f(0.2, "TD3: std of the noise smoothing the target policy",
                                    min=0)
    target_noise_clip: float = _f(0.5, "TD3: clip of the target policy noise", min=0)
    replay_in_checkpoint: bool = _f(True, "SAC/TD3: write the replay buffer into checkpoints "
                                    "(periodic and final), so --resume continues exactly; false "
                                    "keeps checkpoints small and a resumed run refills it")


@dataclass
class RunConfig:
    total_steps: int = _f(200_000, "env steps to train for", min=1)
    seed: int = _f(1, "random seed", min=0)
    device: str = _f("auto", "torch device (auto: cuda when present, else cpu)",
                     choices=("auto", "cpu", "cuda"))
    torch_threads: int = _f(0, "torch intra-op threads (0: auto)", min=0)
    flush_denormals: bool = _f(True, "every process of the run treats subnormal floats "
                               "(below 1.2e-38) as zero (x86 FTZ/DAZ): the optimizer moments "
                               "of dead units decay into them, where x86 arithmetic takes a slow "
                               "path (a TD3 gradient step measured 1.39x slower); false: IEEE "
                               "subnormals, as plain torch")
    numpy_acting: bool = _f(False, "accelerator, A2C/PPO: act with NumPy for MLP policies with a "
                            "Discrete head on the CPU (the same arithmetic, tested equal, under "
                            "half of torch's per-step overhead)")
    numpy_update: bool = _f(False, "accelerator, A2C/PPO: run the update (loss, hand-derived "
                            "gradients, clipping, Adam/RMSprop step) in NumPy for those "
                            "policies (the same arithmetic, tested equal to losses.py through "
                            "autograd; about a sixth of torch's time at this size)")
    backend: str = _f("local", "where workers run (which algorithm runs where: registry.py)",
                     choices=registry.BACKENDS)
    stop_mean_return: float | None = _f(None, "stop once the mean of the last 100 episodes "
                                        "reaches this")
    stop_eval_return: float | None = _f(None, "stop once a periodic evaluation (run.eval_every) "
                                        "reaches this mean return")
    max_episodes: int = _f(0, "stop after this many episodes (0: no limit)", min=0)
    max_wall_seconds: float = _f(0.0, "stop once the run's wall time, resumes included, "
                                 "reaches this many seconds (0: no limit)", min=0)
    log_every: int = _f(10, "updates between log lines / TensorBoard points", min=1)
    checkpoint_every: int = _f(0, "updates between periodic checkpoints (0: only best/final)",
                               min=0)
    keep_checkpoints: int = _f(3, "periodic checkpoints kept", min=1)
    eval_every: int = _f(0, "env steps between evaluations during training (0: off)", min=0)
    eval_episodes: int = _f(20, "episodes of the final evaluation (0: skip)", min=0)
    eval_during_episodes: int = _f(5, "episodes of each evaluation during training", min=1)
    eval_greedy: bool = _f(True, "evaluate with the most likely action")
    nan_guard: bool = _f(True, "stop with a clear error on NaN/inf in obs, rewards, loss, grads")
    worker_timeout: float = _f(60.0, "A3C/Ray: seconds without a heartbeat before a worker is "
                               "restarted; A2C with algo.processes: seconds a process may take "
                               "for one rollout before the run stops", min=0,
                               min_exclusive=True)
    max_worker_restarts: int = _f(3, "A3C/Ray: restarts allowed before the run fails", min=0)
    ray_address: str = _f("", "Ray cluster address ('' starts a local cluster on 127.0.0.1)")


SECTIONS: dict[str, type] = {"env": EnvConfig, "model": ModelConfig, "algo": AlgoConfig,
                             "run": RunConfig}
ALIASES = {"algo.t_max": "algo.num_steps"}


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = ""
    description: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---------------------------------------------------------------- presets

def _preset_dir():
    return resources.files("actorcritic") / "presets"


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description."""
    out = {}
    for entry in sorted(_preset_dir().iterdir(), key=lambda p: p.name.rsplit(".", 1)[0]):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text()) or {}
            lines = str(data.get("description", "")).strip().splitlines()
            out[entry.name[:-5]] = lines[0] if lines else ""
    return out


def _read_preset(name_or_path: str) -> tuple[str, dict]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text, name = path.read_text(), path.stem
    else:
        entry = _preset_dir() / f"{name_or_path}.yaml"
        if not entry.is_file():
            names = list(list_presets())
            close = difflib.get_close_matches(name_or_path, names, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown preset '{name_or_path}'.{hint} "
                              f"Run 'actorcritic presets' to list them: {', '.join(names)}")
        text, name = entry.read_text(), name_or_path
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset '{name_or_path}' is not valid YAML: "
                          f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"preset '{name_or_path}' must be a mapping of sections")
    return name, data


# ---------------------------------------------------------------- validation

def _type_of(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _coerce(key: str, value: Any, tp: Any, meta: dict) -> Any:
    """Check `value` against the field's type and rule; return the value to store."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        tp = args[0]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{key} must be an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
    elif tp is str:
        if isinstance(value, bool) and {"on", "off"} <= set(meta.get("choices") or ()):
            value = "on" if value else "off"  # YAML reads a bare on/off as a boolean
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
    elif tp is list or origin is list:
        if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
                and v not in (float("inf"), float("-inf")) for v in value):
            raise ConfigError(f"{key} must be a list of finite numbers, got {value!r}")
    elif tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
    choices = meta.get("choices")
    if choices and value not in choices:
        if meta.get("import_path") and is_import_path(value):
            return value
        own = " or module:Class" if meta.get("import_path") else ""
        raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}{own}; got "
                          f"{value!r}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
        op = ">" if meta.get("min_exclusive") else ">="
        raise ConfigError(f"{key} must be {op} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key} must be <= {hi}, got {value!r}")
    return value


def valid_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid_keys(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    section = key.split(".")[0]
    if section in SECTIONS:
        names = [f.name for f in dataclasses.fields(SECTIONS[section])]
        return ConfigError(f"unknown config key {key!r}{hint} Valid keys in {section!r}: "
                           f"{', '.join(names)}")
    return ConfigError(f"unknown config section in {key!r}{hint} Valid sections: "
                       f"{', '.join(SECTIONS)}")


def _set(cfg: Config, key: str, value: Any) -> None:
    key = ALIASES.get(key, key)
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise _unknown_key(key)
    section, name = parts
    cls = SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise _unknown_key(key)
    stored = _coerce(key, value, _type_of(cls, name), dict(fields[name].metadata))
    setattr(getattr(cfg, section), name, stored)


def config_from_dict(data: dict, name: str = "") -> Config:
    """Build a validated Config from a nested mapping (a preset or a saved config.yaml)."""
    cfg = Config(preset=str(data.get("preset", name) or name),
                 description=str(data.get("description", "") or ""))
    for section, body in data.items():
        if section in ("preset", "description"):
            continue
        if section not in SECTIONS:
            raise _unknown_key(str(section))
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"section '{section}' must be a mapping of keys")
        for key, value in body.items():
            _set(cfg, f"{section}.{key}", value)
    check_consistency(cfg)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """`algo.lr=3e-4` -> ("algo.lr", 0.0003); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _looks_like_float(raw):
        value = float(raw)
    return key.strip(), value


def _looks_like_float(raw: str) -> bool:
    try:
        float(raw)
        return True
    except ValueError:
        return False


def apply_overrides(cfg: Config, overrides: list[str] | None) -> Config:
    for text in overrides or []:
        key, value = parse_override(text)
        _set(cfg, key, value)
    check_consistency(cfg)
    return cfg


def check_consistency(cfg: Config) -> None:
    """Rules that involve more than one key."""
    if len(cfg.env.resize) != 2 or any(v < 1 for v in cfg.env.resize):
        raise ConfigError(f"env.resize must be [height, width] of positive sizes, got "
                          f"{cfg.env.resize}")
    if cfg.env.crop and len(cfg.env.crop) != 4:
        raise ConfigError(f"env.crop must be [top, bottom, left, right], got {cfg.env.crop}")
    if any(int(h) < 1 for h in cfg.model.hidden_sizes):
        raise ConfigError(f"model.hidden_sizes must be positive, got {cfg.model.hidden_sizes}")
    if cfg.model.encoder_kwargs and not is_import_path(cfg.model.encoder):
        raise ConfigError(f"model.encoder_kwargs is for an encoder given as module:Class; "
                          f"model.encoder is {cfg.model.encoder}")
    _check_football_scenarios(cfg.env)
    placement = registry.check(cfg)  # which algorithm runs on which placement and backend
    _check_players(cfg, placement.several_players)
    _check_family_keys(cfg)
    _check_ppo_and_normalization(cfg)
    if cfg.algo.processes > 1:
        if cfg.env.num_envs % cfg.algo.processes:
            raise ConfigError(f"env.num_envs ({cfg.env.num_envs}) must be a multiple of "
                              f"algo.processes ({cfg.algo.processes})")
        if cfg.algo.normalize_advantage:
            raise ConfigError("algo.normalize_advantage needs the whole batch's statistics; "
                              "it cannot be used with algo.processes > 1")


def _check_football_scenarios(env: EnvConfig) -> None:
    from actorcritic.envs.football_scenarios import (
        check_scenario_weights,
        is_football,
        scenarios_of,
    )
    from actorcritic.errors import EnvError

    if not is_football(env.id):
        scenarios: tuple[str, ...] = ()
    else:
        try:
            scenarios = scenarios_of(env.id)
            if env.scenario_weights:
                check_scenario_weights(env.scenario_weights, scenarios)
        except EnvError as exc:
            raise ConfigError(str(exc)) from None
    if len(scenarios) < 2:
        for key, value in (("env.scenario_weights", env.scenario_weights),
                           ("env.scenario_curriculum", env.scenario_curriculum)):
            if value:
                raise ConfigError(f"{key} is for football runs over several scenarios "
                                  f"(env.id: football/<scenario>,<scenario>... or "
                                  f"football/academy); env.id is {env.id}")


def _check_players(cfg: Config, placement_ok: bool) -> None:
    """env.players > 1: several football players under one policy (envs/football_players.py)."""
    players, env = cfg.env.players, cfg.env
    if players == 1:
        return
    if not env.id.startswith(("gfootball/", "football/")):
        raise ConfigError(f"env.players={players} is for football envs (football/<scenario> "
                          f"with env.backend=gfootball); env.id is {env.id}")
    for key, fix in (("env.backend", "gfootball"), ("env.eval_backend", "auto")):
        if registry.cfg_value(cfg, key) == "envpool":
            raise ConfigError(f"env.players={players}: EnvPool's football engine controls one "
                              f"player only ({key}=envpool); set {key}={fix} for the official "
                              f"engine")
    if env.representation.startswith("pixels"):
        raise ConfigError(f"env.players={players}: env.representation={env.representation} "
                          f"gives every player the same frame; use simple115v2 or extracted, "
                          f"which mark each player's own active player")
    if not placement_ok:
        runs = {a.name: [p for p in a.placements if p.several_players]
                for a in registry.ALGORITHMS.values()}
        where = " or ".join(f"{name} ({', '.join(p.name for p in ps)})"
                            for name, ps in runs.items() if ps)
        backends = sorted({p.backend for ps in runs.values() for p in ps})
        raise ConfigError(f"env.players={players} needs the games stepped in this process or "
                          f"its helpers, which algo.name={cfg.algo.name} on run.backend="
                          f"{cfg.run.backend} does not; use algo.name={where} on "
                          f"run.backend={'/'.join(backends)}")


# Keys that only one family of algorithms reads: set away from its default with an
# algorithm of the other family, a key would be silently ignored, so it is refused.
ON_POLICY_KEYS = ("algo.num_steps", "algo.gae_lambda", "algo.ent_coef", "algo.vf_coef",
                  "algo.normalize_advantage", "algo.epochs", "algo.minibatches",
                  "algo.clip_coef", "algo.clip_schedule", "algo.clip_value_loss",
                  "algo.target_kl", "algo.reuse_acting_graph", "algo.num_workers",
                  "algo.shared_lock", "algo.vtrace_rho", "algo.vtrace_c", "algo.learner_batch",
                  "run.numpy_acting", "run.numpy_update")
OFF_POLICY_KEYS = ("algo.buffer_size", "algo.learning_starts", "algo.batch_size", "algo.tau",
                   "algo.train_freq", "algo.gradient_steps", "algo.policy_delay",
                   "algo.init_alpha", "algo.autotune_alpha", "algo.target_entropy",
                   "algo.exploration_noise", "algo.target_policy_noise",
                   "algo.target_noise_clip", "algo.replay_in_checkpoint")


def _changed_keys(cfg: Config, keys: tuple[str, ...]) -> list[str]:
    defaults = Config()
    return [k for k in keys
            if registry.cfg_value(cfg, k) != registry.cfg_value(defaults, k)]


def _check_family_keys(cfg: Config) -> None:
    off_policy = registry.ALGORITHMS[cfg.algo.name].off_policy
    keys = _changed_keys(cfg, ON_POLICY_KEYS if off_policy else OFF_POLICY_KEYS)
    if keys:
        family = "on-policy" if off_policy else "off-policy (SAC and TD3)"
        raise ConfigError(f"{', '.join(keys)} {'is' if len(keys) == 1 else 'are'} for "
                          f"{family} algorithms, and algo.name={cfg.algo.name} does not read "
                          f"{'it' if len(keys) == 1 else 'them'}: remove "
                          f"{'it' if len(keys) == 1 else 'them'} or choose another algo.name")
    if off_policy and cfg.model.core != "none":
        raise ConfigError(f"algo.name={cfg.algo.name} has no recurrent policies: set "
                          f"model.core=none")
    if off_policy and not cfg.model.shared_trunk:
        raise ConfigError(f"algo.name={cfg.algo.name} always has a separate actor and twin "
                          f"critics; model.shared_trunk=false does not apply: remove it")
    if off_policy and cfg.algo.batch_size > cfg.algo.buffer_size:
        raise ConfigError(f"algo.batch_size ({cfg.algo.batch_size}) must be at most "
                          f"algo.buffer_size ({cfg.algo.buffer_size})")


def _check_ppo_and_normalization(cfg: Config) -> None:
    one_process = cfg.algo.name in ("a2c", "ppo") and cfg.algo.processes == 1 \
        and cfg.run.backend == "local"
    for key, on in (("model.normalize_obs", cfg.model.normalize_obs),
                    ("algo.normalize_reward", cfg.algo.normalize_reward)):
        if on and not one_process:
            raise ConfigError(f"{key} is for A2C and PPO in one process (algo.name a2c or "
                              f"ppo, algo.processes 1, run.backend local): the statistics "
                              f"live with the learner's model")
    if cfg.algo.normalize_reward and cfg.algo.reward_scale != 1.0:
        raise ConfigError("algo.normalize_reward and algo.reward_scale both scale rewards; "
                          "choose one")
    if cfg.algo.name != "ppo":
        return
    if cfg.model.core != "none" and cfg.algo.minibatches > cfg.env.num_envs:
        raise ConfigError(f"recurrent PPO splits whole env sequences into minibatches: "
                          f"algo.minibatches ({cfg.algo.minibatches}) must be <= env.num_envs "
                          f"({cfg.env.num_envs})")


def load_config(preset: str | Path | dict = "cartpole-a2c", overrides: list[str] | None = None,
                **sections: dict) -> Config:
    """Load a preset by name (or a YAML path, or a mapping) and apply overrides.

    `overrides` are `section.key=value` strings; `sections` are mappings merged in, e.g.
    `load_config("cartpole-a2c", run={"total_steps": 10_000})`.
    """
    if isinstance(preset, dict):
        name, data = str(preset.get("preset", "")), preset
    else:
        name, data = _read_preset(str(preset))
    cfg = config_from_dict(data, name)
    for section, body in sections.items():
        for key, value in (body or {}).items():
            _set(cfg, f"{section}.{key}", value)
    return apply_overrides(cfg, overrides)


def reference_table() -> str:
    """Markdown table of every key, its default and its help (for the documentation site)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else f.default
            help_text = f.metadata["help"]
            if f.metadata.get("choices"):
                help_text += f" ({' / '.join(f.metadata['choices'])})"
            rows.append(f"| `{section}.{f.name}` | `{default}` | {help_text} |")
    return "\n".join(rows)
