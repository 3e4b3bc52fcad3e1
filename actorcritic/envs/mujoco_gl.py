"""Off-screen rendering of MuJoCo envs on machines without a display.

MuJoCo renders through an OpenGL context chosen by MUJOCO_GL (glfw by default, which needs
a display). Where there is no display and the user chose nothing, videos use OSMesa,
Mesa's software renderer (`scripts/install_osmesa.sh`, run by `make test`); a machine
where no backend works gets one line saying what to install.
"""

from __future__ import annotations

import os

import gymnasium as gym

from actorcritic.errors import EnvError


def is_mujoco(env_id: str) -> bool:
    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:
        return False
    return isinstance(entry, str) and entry.startswith("gymnasium.envs.mujoco")


def prepare_rendering(env_id: str) -> None:
    """Before a MuJoCo env is made with render_mode rgb_array: OSMesa when headless."""
    if "MUJOCO_GL" in os.environ or os.environ.get("DISPLAY") or \
            os.environ.get("WAYLAND_DISPLAY") or not is_mujoco(env_id):
        return
    os.environ["MUJOCO_GL"] = "osmesa"
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def render_error(env_id: str, exc: BaseException) -> EnvError:
    backend = os.environ.get("MUJOCO_GL", "glfw")
    detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
    return EnvError(f"cannot render {env_id} with MUJOCO_GL={backend} ({type(exc).__name__}: "
                    f"{detail}); a machine without a display needs off-screen OpenGL: "
                    f"install OSMesa (scripts/install_osmesa.sh, or apt-get install "
                    f"libosmesa6) and leave MUJOCO_GL unset, or set MUJOCO_GL=egl on a GPU")
