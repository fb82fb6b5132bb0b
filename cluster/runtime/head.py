"""A Ray head that ``stakeray up`` starts on this machine, and stops again at ``down``.

The head runs ``ray start --head --block`` in a session of its own, so it
outlives the ``up`` command, and ``down`` stops exactly this head by its
process group (``ray stop`` would stop every Ray cluster of the machine).
Token authentication is on: Ray 2.60's ``ray start`` enables it only when it
finds a token, so a token is made first (``~/.ray/auth_token``, as ``ray
get-auth-token --generate`` does) and the head is started with
``RAY_AUTH_MODE=token``; this user's later commands find the same token.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

READY = "Ray runtime started"
HEAD_LOG = "ray-head.log"
"""The local head's output, in the run directory."""


class HeadError(Exception):
    """The local head cannot start (one line)."""


def ray_command() -> list[str]:
    """Return the ``ray`` command of this Python (the console script, else its module)."""
    script = Path(sys.executable).parent / "ray"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


def ensure_token() -> None:
    """Make the cluster token if this user has none (``ray get-auth-token --generate``)."""
    done = subprocess.run(
        [*ray_command(), "get-auth-token", "--generate"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise HeadError(f"ray get-auth-token failed: {tail[0] if tail else done.returncode}")


def start_ray(
    options: list[str], log: Path, env: dict[str, str], timeout: float = 120.0
) -> subprocess.Popen[bytes]:
    """Run ``ray start --block OPTIONS`` in a session of its own; wait until the node is up."""
    with log.open("ab") as fh:
        process = subprocess.Popen(
            [*ray_command(), "start", "--block", *options],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while READY not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_head(process.pid)
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            raise HeadError(f"ray start failed: {lines[-1] if lines else 'no output'} (see {log})")
        time.sleep(0.2)
    return process


def start_head(port: int, num_cpus: int, log: Path) -> int:
    """Start a head on ``port`` with token authentication on; return its process id."""
    ensure_token()
    options = [
        "--head",
        f"--port={port}",
        f"--num-cpus={num_cpus}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    return start_ray(options, log, {**os.environ, "RAY_AUTH_MODE": "token"}).pid


def session_members(sid: int) -> list[int]:
    """Return the live processes of session ``sid`` (Ray's daemons run in the head's session)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            state, session = fields[0], fields[3]
        except (OSError, IndexError):
            continue
        if int(session) == sid and state != "Z":
            members.append(int(entry.name))
    return members


def kill_session(sid: int, sig: int) -> None:
    """Send ``sig`` to every live process of session ``sid``."""
    for member in session_members(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, sig)


def stop_head(pid: int, timeout: float = 30.0) -> None:
    """Stop the head started by :func:`start_head` and every Ray process of its session.

    Only the ``ray start --block`` process gets SIGTERM: it shuts its daemons down
    in order (about 2 s here); signalling them all at once takes Ray ~30 s.
    Whatever is left after ``timeout`` is killed.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while session_members(pid):
        if time.monotonic() > deadline:
            kill_session(pid, signal.SIGKILL)
            return
        time.sleep(0.1)
