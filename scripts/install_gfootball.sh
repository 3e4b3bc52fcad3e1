#!/usr/bin/env bash
# Build and install the official Google Research Football engine (gfootball 2.10.2) into .venv.
#
#   scripts/install_gfootball.sh            # or: make football
#
# 1. installs the Debian build dependencies (apt-get; sudo only when not root),
# 2. builds a gfootball wheel once (about 6 minutes on an idle 2-core machine) and keeps it
#    in $ACTORCRITIC_WHEEL_CACHE (default ~/.cache/actorcritic/wheels), so later runs on the
#    same machine (CI included) install in seconds,
# 3. installs the wheel and its run-time needs (`six`, the old `gym<0.26` API it is written
#    for, absl-py, scipy, psutil, opencv-python-headless).
#
# Environment: PYTHON (default .venv/bin/python), ACTORCRITIC_WHEEL_CACHE, SKIP_APT=1 to skip step 1.
set -euo pipefail

GFOOTBALL_VERSION=2.10.2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CACHE="${ACTORCRITIC_WHEEL_CACHE:-$HOME/.cache/actorcritic/wheels}"

if [ ! -x "$PYTHON" ]; then
    echo "error: $PYTHON not found; create the virtual environment first (make install)" >&2
    exit 1
fi

if "$PYTHON" -c "import gfootball.env" 2>/dev/null; then
    echo "gfootball is already installed in $("$PYTHON" -c 'import sys; print(sys.prefix)')"
    exit 0
fi

if [ "${SKIP_APT:-0}" != "1" ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        SUDO="sudo"
    fi
    echo "== installing Debian build dependencies"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev \
        libsdl2-gfx-dev libboost-all-dev libdirectfb-dev
fi

mkdir -p "$CACHE"
WHEEL="$(ls "$CACHE"/gfootball-"$GFOOTBALL_VERSION"-*.whl 2>/dev/null | head -n 1 || true)"
if [ -z "$WHEEL" ]; then
    echo "== building gfootball $GFOOTBALL_VERSION (several minutes; the wheel is cached in $CACHE)"
    # Its setup.py needs an old setuptools (<70), wheel and psutil at build time; build in a
    # throwaway venv of the same interpreter so .venv keeps its own setuptools.
    BUILD_ENV="$(mktemp -d)"
    trap 'rm -rf "$BUILD_ENV"' EXIT
    "$PYTHON" -m venv "$BUILD_ENV"
    "$BUILD_ENV/bin/python" -m pip install -q "setuptools<70" wheel psutil
    # Its build script calls `python3 -c 'import psutil'`: put the build venv first on PATH.
    PATH="$BUILD_ENV/bin:$PATH" "$BUILD_ENV/bin/python" -m pip wheel --no-deps \
        --no-build-isolation -w "$CACHE" "gfootball==$GFOOTBALL_VERSION"
    WHEEL="$(ls "$CACHE"/gfootball-"$GFOOTBALL_VERSION"-*.whl | head -n 1)"
else
    echo "== using cached wheel $WHEEL"
fi

# Run-time dependencies. gfootball is written for the pre-0.26 gym API. --no-deps: its
# metadata also asks for pygame (keyboard/gamepad players only) and opencv-python, which
# would overwrite the files of pygame-ce / opencv-python-headless that .venv may hold;
# the headless OpenCV is all the env needs (cv2.resize/split/merge).
"$PYTHON" -m pip install -q --no-deps "$WHEEL"
"$PYTHON" -m pip install -q "six" "gym<0.26" "absl-py" "scipy" "psutil" \
    "opencv-python-headless"
"$PYTHON" - <<'PY'
import contextlib, io
with contextlib.redirect_stderr(io.StringIO()):  # gym 0.25's deprecation notice
    import gfootball.env as e
print("gfootball ready:", e.__file__)
PY
