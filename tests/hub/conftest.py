"""The room on a real JupyterHub (`make test-hub`): kept out of the default `pytest` run like tests/browser.

Collected only when LABKIT_HUB_TESTS=1 (what `make test-hub` sets) or when this folder or a file in it is named
on the command line. It needs root (it makes and removes temporary system users), /usr/bin/chromium,
playwright (constraints-browser.txt), jupyterhub (constraints-hub.txt) and hub/node_modules (npm ci in hub/).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from opt_in import ignore_unless_asked

HERE = Path(__file__).resolve().parent
ENV_FLAG = "LABKIT_HUB_TESTS"


def pytest_ignore_collect(collection_path, config):
    return ignore_unless_asked(config, HERE, ENV_FLAG)


def pytest_collection_modifyitems(session, config, items):
    """One clear message, before anything starts, for each thing the room needs and lacks."""
    if not any(HERE in Path(str(item.path)).parents for item in items):
        return
    sys.path.insert(0, str(HERE))
    from hubroom import CHROMIUM, PROXY

    missing = []
    if os.geteuid() != 0:
        missing.append("not root: the room test creates and removes temporary system users (useradd); run it as root")
    for tool in ("useradd", "userdel", "groupadd", "runuser"):
        if shutil.which(tool) is None:
            missing.append(f"{tool} not found (package passwd / util-linux)")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} not found: `apt-get install -y chromium` (never `playwright install`)")
    if not PROXY.exists():
        missing.append(f"{PROXY} not found: run `make hub` once, or `npm ci --prefix hub`")
    for module, lock in (("playwright", "constraints-browser.txt"), ("jupyterhub", "constraints-hub.txt"),
                         ("jupyterhub_idle_culler", "constraints-hub.txt")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the Python package {module} is not installed: `make test-hub` installs it "
                           f"(pip install --no-deps -r {lock})")
    if missing:
        pytest.exit("the room test cannot run:\n  " + "\n  ".join(missing), returncode=4)
