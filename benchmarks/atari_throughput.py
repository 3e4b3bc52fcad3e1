"""A2C throughput on Pong, side by side in one process: ours, Stable-Baselines3, and the
learner ceiling.

Setting (the issue's bar): PongNoFrameskip-v4, Nature CNN, 16 envs x 5 steps, RMSprop
(lr 7e-4, alpha 0.99, eps 1e-5), CPU.

- ours: the A2C driver's per-update work (collect_rollout + rollout_loss + backward +
  clip + RMSprop step) on the configured backend (envpool by default), in steady state;
  and `train()` end to end (start-up, logging and checkpoints included).
- sb3: stable_baselines3.A2C("CnnPolicy") on make_atari_env + VecFrameStack(4), same
  hyperparameters (SB3's own DummyVecEnv of Gymnasium wrappers).
- ceiling: the same loop, model and update on a synthetic env that costs nothing (random
  frames drawn once): the learner alone.
- emulators alone: the same envs stepped with random actions and no network.
- with --processes P: ours with `algo.processes=P` (the envs split over P processes of one
  thread each, gradients summed before one RMSprop step: the same update) and its own
  ceiling, the P processes on synthetic envs.
- with --bfloat16: ours and its ceiling with `model.precision=bfloat16` (the encoder under
  bfloat16 autocast; parameters, heads, losses and RMSprop in float32), and its train().
- with both: also ours and its ceiling in P processes and bfloat16.

Measurements are interleaved over rounds and the median is reported, so a load change on
a shared machine hits all three alike.

    .venv/bin/python benchmarks/atari_throughput.py --seconds 20 --rounds 3 --bfloat16

Needs `pip install stable-baselines3` (the `bench` extra) for the SB3 row.
"""

from __future__ import annotations

import os

# Passive OpenMP waiting: with busy-waiting threads, torch on a loaded (or oversubscribed)
# machine can run 10x slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from actorcritic.algorithms.update import (  # noqa: E402
    clip_and_measure,
    make_optimizer,
    reuses_acting_graph,
    rollout_loss,
)
from actorcritic.config import load_config  # noqa: E402
from actorcritic.envs import make_vector_env  # noqa: E402
from actorcritic.envs.actions import ActionAdapter  # noqa: E402
from actorcritic.models.actor_critic import ActorCritic  # noqa: E402
from actorcritic.samplers.rollout import (  # noqa: E402
    Carry,
    RolloutBuffer,
    collect_rollout,
)

ENV_ID = "PongNoFrameskip-v4"
N_ENVS, N_STEPS = 16, 5
SB3_UPDATES_PER_CALL = 16
TORCH_THREADS = os.cpu_count() or 1  # --threads
HP = dict(lr=7e-4, gamma=0.99, ent_coef=0.01, vf_coef=0.25, max_grad_norm=0.5, eps=1e-5)


def our_config(backend: str, processes: int = 1, precision: str = "float32"):
    return load_config("pong-a2c-tuned", [
        f"env.id={ENV_ID}", f"env.num_envs={N_ENVS}", f"env.backend={backend}",
        f"algo.num_steps={N_STEPS}", "algo.optimizer=rmsprop", f"algo.lr={HP['lr']}",
        "algo.lr_schedule=constant", "algo.rms_alpha=0.99", f"algo.optim_eps={HP['eps']}",
        f"algo.ent_coef={HP['ent_coef']}", f"algo.vf_coef={HP['vf_coef']}",
        f"algo.max_grad_norm={HP['max_grad_norm']}", "algo.gae_lambda=1.0",
        "model.encoder=nature_cnn", "run.device=cpu", "run.eval_episodes=0",
        f"algo.processes={processes}", f"model.precision={precision}"])


def timed(step, seconds: float, steps_per_call: int, warmup: int = 3,
          cpu_clock=time.process_time) -> tuple[float, float]:
    """Call `step` for about `seconds` after `warmup` calls; return env steps per second of
    wall time and per second of CPU time (`cpu_clock`: this process, all its threads). On a
    machine shared with other jobs the CPU-time figure is the steadier one: it does not count
    time spent waiting for a core."""
    for _ in range(warmup):
        step()
    calls, start, cpu = 0, time.perf_counter(), cpu_clock()
    while time.perf_counter() - start < seconds:
        step()
        calls += 1
    wall, cpu = time.perf_counter() - start, cpu_clock() - cpu
    return calls * steps_per_call / wall, calls * steps_per_call / max(cpu, 1e-9)


class SyntheticEnvs:
    """A VecEnv that costs nothing: random frames drawn once, no episode ends. Training on
    it is the learner ceiling: everything our loop does except stepping emulators."""

    def __init__(self, like):
        self.num_envs = like.num_envs
        self.single_observation_space = like.single_observation_space
        self.single_action_space = like.single_action_space
        rng = np.random.default_rng(0)
        shape = (8, self.num_envs, *self.single_observation_space.shape)
        self.frames = rng.integers(0, 256, shape, dtype=np.uint8)
        self.rewards = rng.integers(-1, 2, (8, self.num_envs)).astype(np.float32)
        self.no_end = np.zeros(self.num_envs, dtype=bool)
        self.t = 0

    def reset(self, seed=None):
        return self.frames[0]

    def step(self, actions):
        self.t = (self.t + 1) % len(self.frames)
        return self.frames[self.t], self.rewards[self.t], self.no_end, self.no_end, []

    def close(self) -> None:
        pass


def synthetic_envs(env_cfg, seed: int) -> SyntheticEnvs:
    """A helper process's envs for the multi-process ceiling (module level: spawn pickles
    it by name)."""
    from actorcritic.envs import make_vector_env

    real = make_vector_env(env_cfg, seed=seed, mode="train")
    try:
        return SyntheticEnvs(real)
    finally:
        real.close()


class Ours:
    """The A2C driver's per-update work, exactly as run_vector does it (minus logging):
    collect_rollout (keeping the acting graph, as the driver does for a feedforward CNN),
    rollout_loss, backward, clip, RMSprop step. `synthetic=True` replaces the emulators by
    SyntheticEnvs: the learner ceiling.

    With `processes` > 1, run_vector's `algo.processes` branch: every process collects its
    share and backpropagates, rank 0 (this process) combines the gradients, clips and
    steps; each process runs cores / processes torch threads and its share of the emulator
    threads (with `synthetic`, every process on SyntheticEnvs).

    With `overlap`, run_vector's `algo.overlap` branch: an acting thread collects the next
    rollout (with the parameters from before the update) while this thread learns from the
    last one; each thread runs half of the cores' torch threads."""

    def __init__(self, backend: str, synthetic: bool = False, processes: int = 1,
                 precision: str = "float32", overlap: bool = False):
        from actorcritic.samplers.overlap import OverlappedRollouts
        from actorcritic.samplers.processes import Helpers, flat_gradients, share_of

        cfg = our_config(backend, processes, precision)
        cfg.algo.overlap = overlap
        self.cfg = cfg
        self.envs = make_vector_env(share_of(cfg).env, seed=1, mode="train")
        if synthetic:
            real, self.envs = self.envs, SyntheticEnvs(self.envs)
            real.close()
        self.model = ActorCritic(self.envs.single_observation_space,
                                 self.envs.single_action_space, cfg.model)
        self.keep_graph = reuses_acting_graph(self.model, cfg.algo)
        self.opt = make_optimizer(self.model.parameters(), cfg.algo)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.buf = RolloutBuffer(N_STEPS, self.envs.num_envs, self.envs.single_observation_space,
                                 self.envs.single_action_space, torch.device("cpu"))
        self.carry = Carry.start(self.envs.reset(seed=1), self.model, torch.device("cpu"))
        self.to_env = ActionAdapter(self.envs.single_action_space)
        self.helpers = self.overlap = None
        cores = TORCH_THREADS
        # torch.set_num_threads is process-wide: every row sets its own count on each call.
        self.threads = max(1, cores // (2 if overlap else processes))
        self.tail_threads = cores
        if overlap:
            acting_rng = torch.Generator().manual_seed(1)  # as run_vector: a stream of its own

            def collect(model, buf):
                return collect_rollout(self.envs, model, buf, self.carry, self.to_env, True,
                                       keep_graph=self.keep_graph, generator=acting_rng)

            second = RolloutBuffer(N_STEPS, self.envs.num_envs,
                                   self.envs.single_observation_space,
                                   self.envs.single_action_space, torch.device("cpu"))
            torch.set_num_threads(self.threads)
            self.overlap = OverlappedRollouts(self.model, (self.buf, second), collect)
        if processes > 1:
            self.model.share_memory()
            self.grad = torch.zeros(sum(p.numel() for p in self.params))
            flat_gradients(self.params, self.grad)
            self.helpers = Helpers(cfg, self.model, self.grad.numel(),
                                   make_envs=synthetic_envs if synthetic else None)

    def update(self) -> None:
        from actorcritic.samplers.processes import torch_threads, valid_count

        torch.set_num_threads(self.threads)
        if self.overlap is not None:
            rollout = self.overlap.next()
        else:
            if self.helpers is not None:
                self.helpers.start_rollouts(False)
            rollout = collect_rollout(self.envs, self.model, self.buf, self.carry, self.to_env,
                                      True, keep_graph=self.keep_graph)
            if self.helpers is not None:
                self.helpers.rollouts_done()
        buf = rollout.buffer
        loss, stats = rollout_loss(rollout.model, buf, self.cfg.algo, with_stats=False,
                                   acted=rollout.acted)
        if self.helpers is not None:
            self.grad.zero_()
            loss.backward()
            with torch_threads(self.tail_threads):  # the helpers wait: use every core
                self.helpers.finish_update(self.grad, valid_count(buf), loss, stats)
                self.step()
        else:
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.overlap is not None:
                self.overlap.take_gradients(rollout)
            self.step()
            if self.overlap is not None:
                self.overlap.release(rollout)

    def step(self) -> None:
        clip_and_measure(self.params, self.cfg.algo.max_grad_norm)
        self.opt.step()

    def cpu_seconds(self) -> float:
        """CPU time of this process and of the helper processes (Linux /proc)."""
        total = time.process_time()
        for proc in self.helpers.procs if self.helpers is not None else []:
            fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def close(self) -> None:
        if self.helpers is not None:
            self.helpers.close()
        if self.overlap is not None:
            self.overlap.close()
        self.envs.close()


class EmulatorsAlone:
    """The envs of `ours` stepped with random actions and no network: what the emulators
    cost by themselves (their CPU per step is the part no schedule can avoid)."""

    def __init__(self, backend: str):
        self.envs = make_vector_env(our_config(backend).env, seed=1, mode="train")
        self.envs.reset(seed=1)
        n = self.envs.num_envs
        self.actions = np.random.default_rng(0).integers(
            0, self.envs.single_action_space.n, (64, N_STEPS, n))
        self.calls = 0

    def update(self) -> None:
        self.calls += 1
        for actions in self.actions[self.calls % len(self.actions)]:
            self.envs.step(actions)

    def close(self) -> None:
        self.envs.close()


class SB3:
    """Stable-Baselines3 A2C with the same settings (its standard Atari pipeline)."""

    def __init__(self):
        import ale_py
        import gymnasium as gym
        from stable_baselines3 import A2C
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import VecFrameStack

        gym.register_envs(ale_py)
        self.env = VecFrameStack(make_atari_env(ENV_ID, n_envs=N_ENVS, seed=1), n_stack=4)
        self.model = A2C("CnnPolicy", self.env, learning_rate=HP["lr"], n_steps=N_STEPS,
                         gamma=HP["gamma"], ent_coef=HP["ent_coef"], vf_coef=HP["vf_coef"],
                         max_grad_norm=HP["max_grad_norm"], rms_prop_eps=HP["eps"],
                         use_rms_prop=True, device="cpu", seed=1, verbose=0)
        self.model.learn(N_ENVS * N_STEPS)  # set up (reset, logger) outside the timing

    def update(self) -> None:
        torch.set_num_threads(TORCH_THREADS)  # an overlapped row may have left fewer
        # 16 updates per learn() call: each call has its own set-up (reset of its logger and
        # callbacks), which ours does not pay; few updates per call would understate SB3.
        self.model.learn(N_ENVS * N_STEPS * SB3_UPDATES_PER_CALL, reset_num_timesteps=False)

    def close(self) -> None:
        self.env.close()


def train_end_to_end(backend: str, steps: int, processes: int = 1,
                     precision: str = "float32", overlap: bool = False) -> float:
    from actorcritic.training import train

    cfg = our_config(backend, processes, precision)
    cfg.algo.overlap = overlap
    cfg.run.total_steps = steps
    cfg.run.log_every = 50
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(cfg, run_dir=f"{tmp}/run", quiet=True)
    return float(summary["sps"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="timing per row per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed calls of each row before its first round")
    p.add_argument("--backend", default="envpool", choices=("envpool", "ale_vector", "sync"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: cpu count)")
    p.add_argument("--no-sb3", action="store_true")
    p.add_argument("--no-train", action="store_true", help="skip the train() end-to-end row")
    p.add_argument("--processes", type=int, default=1,
                   help="also time ours and its ceiling with algo.processes=P (P > 1)")
    p.add_argument("--bfloat16", action="store_true",
                   help="also time ours and its ceiling with model.precision=bfloat16")
    p.add_argument("--overlap", action="store_true",
                   help="also time ours and its own zero-cost-env loop with algo.overlap "
                        "(double-buffered rollouts), in float32 and, with --bfloat16, bfloat16")
    p.add_argument("--recompute", action="store_true",
                   help="also time ours recomputing the rollout (algo.reuse_acting_graph=off)")
    args = p.parse_args()

    global TORCH_THREADS
    threads = TORCH_THREADS = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = {"ours": Ours(args.backend), "ceiling": Ours(args.backend, synthetic=True)}
    if args.processes > 1:
        p_rows = f"{args.processes} processes"
        rows[f"ours, {p_rows}"] = Ours(args.backend, processes=args.processes)
        rows[f"ceiling, {p_rows}"] = Ours(args.backend, synthetic=True,
                                          processes=args.processes)
    if args.bfloat16:
        rows["ours, bfloat16"] = Ours(args.backend, precision="bfloat16")
        rows["ceiling, bfloat16"] = Ours(args.backend, synthetic=True, precision="bfloat16")
    if args.processes > 1 and args.bfloat16:
        rows[f"ours, {p_rows}, bfloat16"] = Ours(args.backend, processes=args.processes,
                                                  precision="bfloat16")
        rows[f"ceiling, {p_rows}, bfloat16"] = Ours(args.backend, synthetic=True,
                                                     processes=args.processes,
                                                     precision="bfloat16")
    if args.overlap:
        for precision in ("float32", "bfloat16") if args.bfloat16 else ("float32",):
            suffix = ", bfloat16" if precision == "bfloat16" else ""
            rows[f"ours, overlapped{suffix}"] = Ours(args.backend, precision=precision,
                                                     overlap=True)
            rows[f"ceiling, overlapped{suffix}"] = Ours(args.backend, synthetic=True,
                                                        precision=precision, overlap=True)
    if args.recompute:
        rows["ours, recomputing"] = Ours(args.backend)
        rows["ours, recomputing"].keep_graph = False
    rows["emulators alone"] = EmulatorsAlone(args.backend)
    if not args.no_sb3:
        try:
            rows["sb3"] = SB3()
        except ImportError:
            print("stable-baselines3 is not installed: pip install stable-baselines3")
    per_call = {k: N_ENVS * N_STEPS for k in rows}
    per_call["sb3"] = N_ENVS * N_STEPS * SB3_UPDATES_PER_CALL
    wall: dict[str, list[float]] = {k: [] for k in rows}
    cpu: dict[str, list[float]] = {k: [] for k in rows}
    load = os.getloadavg()[0]
    for r in range(args.rounds):
        for name, bench in rows.items():
            w, c = timed(bench.update, args.seconds, per_call[name], warmup=args.warmup if r == 0 else 1,
                         cpu_clock=getattr(bench, "cpu_seconds", time.process_time))
            wall[name].append(w)
            cpu[name].append(c)
        print(f"round {r + 1}: " + ", ".join(f"{k} {wall[k][-1]:.0f} ({cpu[k][-1]:.0f}/cpu-s)"
                                              for k in rows), flush=True)
    for bench in rows.values():
        bench.close()
    sps = {k: statistics.median(v) for k, v in wall.items()}
    cps = {k: statistics.median(v) for k, v in cpu.items()}
    if not args.no_train:
        sps["ours: train() end to end"] = train_end_to_end(
            args.backend, int(sps["ours"] * args.seconds * 2) // 80 * 80 + 80)
        if args.processes > 1:
            key = f"ours, {args.processes} processes"
            sps[f"{key}: train()"] = train_end_to_end(
                args.backend, int(sps[key] * args.seconds * 2) // 80 * 80 + 80, args.processes)
        if args.bfloat16:
            sps["ours, bfloat16: train()"] = train_end_to_end(
                args.backend, int(sps["ours, bfloat16"] * args.seconds * 2) // 80 * 80 + 80,
                precision="bfloat16")
        for key in [k for k in sps if k.startswith("ours, overlapped")]:
            sps[f"{key}: train()"] = train_end_to_end(
                args.backend, int(sps[key] * args.seconds * 2) // 80 * 80 + 80,
                precision="bfloat16" if key.endswith("bfloat16") else "float32", overlap=True)

    print(f"\nPong, Nature CNN, {N_ENVS} envs x {N_STEPS} steps, RMSprop, CPU: "
          f"{os.cpu_count()} cores, torch threads {threads}, backend {args.backend}, "
          f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    best = max(v for k, v in sps.items() if k.startswith("ceiling"))
    cores = os.cpu_count() or 1
    print("vs ceil: against the one-process float32 ceiling; vs sync: against the one-process "
          "ceiling of the same precision\n(the synchronous loop on a zero-cost env: model, "
          "acting passes and update, no emulator); vs own: against the ceiling row of the same "
          "layout and precision;\nvs best: against the fastest ceiling row; packed: the most "
          f"`vs own` could be if the {cores} cores ran the own ceiling's CPU work and the "
          "emulators' with no idle time")
    print(f"{'row':40s} {'steps/s':>8s} {'vs SB3':>7s} {'vs ceil':>8s} {'vs sync':>8s} "
          f"{'vs own':>7s} {'vs best':>8s} | {'steps/cpu-s':>11s} {'vs SB3':>7s} {'packed':>7s}")
    for name, v in sps.items():
        own = sps.get(name.split(":")[0].replace("ours", "ceiling", 1)) \
            if name.startswith("ours") else None
        sync = sps.get("ceiling, bfloat16" if "bfloat16" in name else "ceiling")
        line = (f"{name:40s} {v:8.0f} {_ratio(v, sps.get('sb3')):>7s} "
                f"{v / sps['ceiling']:8.0%} {f'{v / sync:.0%}' if sync else '-':>8s} "
                f"{f'{v / own:.0%}' if own else '-':>7s} {v / best:8.0%} |")
        if name in cps:
            c = cps[name]
            line += f" {c:11.0f} {_ratio(c, cps.get('sb3')):>7s}"
            own_cps = cps.get(name.replace("ours", "ceiling", 1))
            if own and own_cps:
                packed = cores / (1 / own_cps + 1 / cps["emulators alone"])
                line += f" {min(packed / own, 1.0):7.0%}"
        print(line)


def _ratio(v: float, ref: float | None) -> str:
    return f"{v / ref:.2f}x" if ref else "-"

if __name__ == "__main__":
    main()
