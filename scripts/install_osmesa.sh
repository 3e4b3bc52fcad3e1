#!/usr/bin/env bash
# Off-screen OpenGL for MuJoCo videos on machines without a display: OSMesa (Mesa's software
# renderer). `actorcritic eval RUN --video DIR` on a MuJoCo env uses it (MUJOCO_GL=osmesa)
# when no display and no MUJOCO_GL is set.
#
#   scripts/install_osmesa.sh               # or: make mujoco-video
#
# apt-get (sudo only when not root); exits 1 with the reason where that is not possible.
set -euo pipefail

if ldconfig -p 2>/dev/null | grep -q "libOSMesa.so"; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then
        SUDO="sudo"
    else
        echo "OSMesa is not installed and apt-get needs root (sudo apt-get install libosmesa6)" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null; then
    echo "OSMesa is not installed and this is not a Debian/Ubuntu machine: install Mesa's OSMesa library" >&2
    exit 1
fi
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libosmesa6 >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libosmesa6 >/dev/null
fi
echo "installed libosmesa6 (off-screen OpenGL for MuJoCo videos)"
