#!/usr/bin/env bash
# Make .venv hold mailqbot and its dev tools. Safe to run again: reinstalls only when
# pyproject.toml changed. On a fresh Debian machine it installs python3-venv first.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_python() {
    if python3 -c 'import venv, ensurepip' 2>/dev/null; then return; fi
    echo "bootstrap: installing python3-venv (needs root)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        python3 python3-venv python3-dev gcc >/dev/null
}

ensure_venv() {
    local stamp=.venv/.installed
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
        return
    fi
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
    touch "$stamp"
}

ensure_python
ensure_venv
