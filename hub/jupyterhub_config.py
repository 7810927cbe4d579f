"""A classroom on one server: JupyterHub for onnx-labkit (`make hub`; docs/workshop.md, "A room on one server").

One read-only install (this checkout and its .venv) serves every learner. Each learner is a system user
with their own home; JupyterHub's default LocalProcessSpawner starts their JupyterLab as that user, so the
operating system keeps learners out of each other's files. At each start, hub/start-learner (run as the
learner) makes their copies of the lessons in ~/onnx-labkit/workspace (`labkit student-copy`: never
overwrites their work), closes ~/onnx-labkit to other users, and starts the server there with
LABKIT_HOME=~/onnx-labkit, so the kit writes only into the learner's own area.

Everything listens on 127.0.0.1 only (put a TLS reverse proxy in front to open it to a room). Settings come
from the environment (make hub passes them through):

  LABKIT_HUB_PASSWORD        the room's shared password (at least 8 characters; required)
  LABKIT_HUB_USERS           learners allowed to log in, comma-separated system users (default: the members of
                             the group LABKIT_HUB_GROUP, default 'learners')
  LABKIT_HUB_ADMIN / LABKIT_HUB_ADMIN_PASSWORD   optional instructor account and its own password
  LABKIT_HUB_PORT            the room's port on 127.0.0.1 (default 8000); the hub's API takes the next port
  LABKIT_HUB_DIR             where the hub keeps its database, cookie secret and logs (default hub/run/)
  LABKIT_HUB_SEATS           learners expected at once (default: the number of allowed learners): each server
                             gets cores / seats threads (at least 1) in OMP/MKL/OpenBLAS/ORT/torch variables
  LABKIT_HUB_CULL_AFTER      seconds of inactivity before the idle culler stops a server (default 3600; 0: off)
  LABKIT_HUB_API_TOKEN       optional: a token for a 'labkit-room' service (scripts and tests: list users, reach
                             learners' servers, stop them)

A shared password lets anyone who knows it log in as any allowed learner: fine for a room of people who trust
each other; for more, use first-use passwords (jupyterhub-firstuseauthenticator) or your site's login.
"""
import grp
import os
import pwd
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KIT = HERE.parent
BIN = Path(sys.executable).parent                     # the kit's venv: jupyterhub runs from it

c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)


def _learners() -> list[str]:
    listed = os.environ.get("LABKIT_HUB_USERS", "").strip()
    if listed:
        return sorted({name.strip() for name in listed.split(",") if name.strip()})
    group = os.environ.get("LABKIT_HUB_GROUP", "learners")
    try:
        return sorted(grp.getgrnam(group).gr_mem)
    except KeyError:
        sys.exit(f"no learners: set LABKIT_HUB_USERS=ann,bob (system users) or add them to the group '{group}' "
                 f"(groupadd {group} && usermod -aG {group} ann)")


def threads_per_seat(seats: int, cores: int | None = None) -> int:
    """The threads one learner's kernel may use: its share of the cores, at least one."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // max(1, seats))


learners = _learners()
system_users = {entry.pw_name for entry in pwd.getpwall()}
missing = [name for name in learners if name not in system_users]
if missing:
    sys.exit(f"not system users: {', '.join(missing)}; create them first (useradd -m NAME) — each learner's server "
             "runs as their own user")
password = os.environ.get("LABKIT_HUB_PASSWORD", "")
if len(password) < 8:
    sys.exit("set LABKIT_HUB_PASSWORD to the room's shared password (at least 8 characters)")

run_dir = Path(os.environ.get("LABKIT_HUB_DIR", HERE / "run"))
run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
port = int(os.environ.get("LABKIT_HUB_PORT", "8000"))
seats = int(os.environ.get("LABKIT_HUB_SEATS", "0") or 0) or len(learners)
threads = str(threads_per_seat(seats))

# --- where it listens: loopback only ---------------------------------------------------------------
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = port + 1
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 2}"
c.ConfigurableHTTPProxy.command = [str(HERE / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(run_dir / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{run_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(run_dir / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True                   # the hub's stop stops every learner's server
c.JupyterHub.cleanup_proxy = True

# --- who may log in ------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = password
c.Authenticator.allowed_users = set(learners)
admin = os.environ.get("LABKIT_HUB_ADMIN", "").strip()
if admin:
    c.Authenticator.admin_users = {admin}
    c.SharedPasswordAuthenticator.admin_password = os.environ.get("LABKIT_HUB_ADMIN_PASSWORD", "")

# --- each learner's server: their own user, their own area, their share of the CPU ---------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(HERE / "start-learner")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~/onnx-labkit/workspace"
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    "LABKIT_BIN": str(BIN),
    "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
    "ORT_DISABLE_TELEMETRY": "1",
    # One seat's share of the cores, so thirty kernels do not each start a thread per core.
    "OMP_NUM_THREADS": threads,              # torch's intra-op pool and OpenMP
    "MKL_NUM_THREADS": threads,
    "OPENBLAS_NUM_THREADS": threads,
    "ORT_INTRA_OP_NUM_THREADS": threads,     # onnxruntime >= 1.32 sizes its default intra-op pool from it
    "ORT_INTER_OP_NUM_THREADS": "1",
}

# --- services: the idle culler, and an optional token for scripts ---------------------------------------
cull_after = int(os.environ.get("LABKIT_HUB_CULL_AFTER", "3600"))
roles = []
services = []
if cull_after > 0:
    services.append({"name": "idle-culler", "command": [str(BIN / "python"), "-m", "jupyterhub_idle_culler",
                                                        f"--timeout={cull_after}", "--cull-every=60"]})
    roles.append({"name": "idle-culler", "services": ["idle-culler"],
                  "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]})
token = os.environ.get("LABKIT_HUB_API_TOKEN", "")
if token:
    services.append({"name": "labkit-room", "api_token": token})
    roles.append({"name": "labkit-room", "services": ["labkit-room"],
                  "scopes": ["list:users", "read:users", "read:servers", "servers", "access:servers"]})
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles
