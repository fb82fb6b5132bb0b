"""A Ray head that ``stakeray up`` starts on this machine, and stops again at ``down``.

The head runs ``ray start --head --block`` in a session of its own, so it
outlives the ``up`` command, and ``down`` stops exactly this head by its
process group (``ray stop`` would stop every Ray cluster of the machine).
Token authentication is on: Ray 2.60's ``ray start`` enables it only when it
finds a token, so a token is made first (``~/.ray/auth_token``, as ``ray
get-auth-token --generate`` does) and the head is started with
``RAY_AUTH_MODE=token``; this user's later commands find the same token.
The token is a secret: it is made under umask 077 (so the file is 0600 and
``~/.ray`` 0700), and an existing token file that others may read is
tightened to 0600.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from protocol.errors import StakerayError

READY = "Ray runtime started"
HEAD_LOG = "ray-head.log"
"""The local head's output, in the run directory."""


class HeadError(StakerayError):
    """The local head cannot start (one line)."""


def ray_command() -> list[str]:
    """Return the ``ray`` command of this Python (the console script, else its module)."""
    script = Path(sys.executable).parent / "ray"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


def token_path() -> Path:
    """Return the token file Ray makes and reads by default: ``~/.ray/auth_token``."""
    return Path.home() / ".ray" / "auth_token"


def ensure_token() -> None:
    """Make the cluster token if this user has none (``ray get-auth-token --generate``).

    Ray writes it with ``open(path, "w")``, so the umask decides its mode: the
    command runs under umask 077 (file 0600). Then :func:`secure_token`. A user who
    has a token already keeps it (no command is started: it costs a second or so).
    """
    if token_path().is_file():
        secure_token()
        return
    done = subprocess.run(
        [*ray_command(), "get-auth-token", "--generate"],
        capture_output=True,
        text=True,
        check=False,
        umask=0o077,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise HeadError(f"ray get-auth-token failed: {tail[0] if tail else done.returncode}")
    secure_token()


def offer_token() -> None:
    """Present this user's token from this process to the clusters it starts or joins.

    Ray reads ``RAY_AUTH_MODE`` when it is imported; this turns token mode on
    afterwards, for this process and the Ray processes it starts, when the
    mode was not set and a token exists.
    """
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level, quiet.level = quiet.level, logging.ERROR  # its "enabled" notice is not news here
    try:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.setLevel(level)


def secure_token(path: Path | None = None) -> None:
    """Make the token file readable and writable by its owner only (0600) if it is wider."""
    path = token_path() if path is None else path
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return  # the token is elsewhere (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)
    except OSError as exc:
        raise HeadError(f"{path}: cannot check the token's permissions: {exc.strerror}") from None
    if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
        try:
            os.chmod(path, 0o600)
        except OSError as exc:
            raise HeadError(
                f"{path}: the Ray token is readable by others (mode {stat.S_IMODE(mode):o})"
                f" and cannot be made 0600: {exc.strerror}"
            ) from None


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
