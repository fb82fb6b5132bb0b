"""The Ray cluster `stakeray run` embeds: only this user's token admits a client, and it is
always a new cluster (never the one a stale ``ray_current_cluster`` names)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.yaml"

PROBE = """
import json, os, subprocess, sys
from cluster.config.schema import load_config
from cluster.runtime.runner import ray_session
import ray

config = load_config(sys.argv[1])
client = '''
import sys, ray
try:
    ray.init(address=sys.argv[1], logging_level="ERROR")
    print("admitted", ray.get(ray.remote(lambda: 41 + 1).remote()))
except Exception as exc:
    print("refused", type(exc).__name__)
'''
with ray_session(config) as session:
    gcs = ray.get_runtime_context().gcs_address
    results = {"gcs": gcs, "auth_mode": os.environ.get("RAY_AUTH_MODE")}
    clients = {
        name: subprocess.Popen([sys.executable, "-c", client, gcs], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for name, env in {
            "stranger": {**os.environ, "RAY_AUTH_MODE": "disabled", "HOME": sys.argv[2]},
            "wrong_token": {**os.environ, "RAY_AUTH_MODE": "token", "HOME": sys.argv[2],
                            "RAY_AUTH_TOKEN": "0" * 64},
            "owner": {**os.environ, "RAY_AUTH_MODE": "token"},
        }.items()
    }
    for name, process in clients.items():
        out, _ = process.communicate(timeout=120)
        results[name] = (out.strip().splitlines() or ["?"])[-1]
print(json.dumps(results))
"""


def test_the_embedded_cluster_admits_only_the_token_and_ignores_a_stale_address(
    tmp_path: Path,
) -> None:
    home, stranger_home = tmp_path / "home", tmp_path / "stranger"
    home.mkdir()
    stranger_home.mkdir()
    # A network `up` started and `down` stopped leaves its address behind; `run` must not
    # try to join it.
    current = Path("/tmp/ray/ray_current_cluster")
    saved = current.read_bytes() if current.exists() else None
    current.parent.mkdir(parents=True, exist_ok=True)
    current.write_text("127.0.0.1:1\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(QUICKSTART), str(stranger_home)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        if saved is None:
            current.unlink(missing_ok=True)
        else:
            current.write_bytes(saved)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["auth_mode"] == "token"
    assert not results["gcs"].endswith(":1")
    assert results["stranger"].startswith("refused"), results
    assert results["wrong_token"].startswith("refused"), results
    assert results["owner"] == "admitted 42", results
    token = home / ".ray" / "auth_token"
    assert token.exists() and (token.stat().st_mode & 0o077) == 0, oct(token.stat().st_mode)
