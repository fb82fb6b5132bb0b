"""Bad input (issue 12): refused in one line naming the field or rule, and nothing changes.

Token strings with a sign or junk, bools where the protocol takes an integer,
config files that are not UTF-8 or repeat a key, unbounded sizes and counts,
bad command-line values and output directories, and the Ray token's mode.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from refusals import assert_refused

from cluster.cli import main
from cluster.cli.app import build_tx
from cluster.config.schema import (
    MAX_ACCOUNTS,
    MAX_COPROCESSORS,
    MAX_DELEGATORS,
    MAX_OPERATORS,
    ConfigError,
    load_config,
    load_workload,
)
from cluster.config.workload import MAX_ARRIVAL_DRAWS, MAX_SPAN_S, MAX_TASKS, generate_tasks
from cluster.engine.network import delegator_stakes
from cluster.runtime.runner import RunError
from protocol import TOKEN, Params, Protocol
from protocol.errors import (
    InvalidAmount,
    ProtocolError,
    TaskStateError,
    UnknownLock,
    UnknownProposal,
    UnknownTask,
)
from protocol.units import tokens
from workers import MAX_SIZE, TaskSpec

# --- 1. token strings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "-0.5",
        "1.-5",
        "-1",
        "+1",
        "1.+5",
        "1e5",
        " 1",
        "1 ",
        "1_000",
        "0x10",
        ".",
        "",
        "1..5",
        "1.5.",
        "١",
        "nan",
        "inf",
        "--1",
        "1,5",
    ],
)
def test_tokens_refuses_a_sign_or_junk_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError) as err:
        tokens(text)
    message = str(err.value)
    assert repr(text) in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("0", 0),
        ("1", TOKEN),
        ("1.5", 3 * TOKEN // 2),
        ("1.", TOKEN),
        (".5", TOKEN // 2),
        ("0.000000000000000001", 1),
        ("007", 7 * TOKEN),
    ],
)
def test_tokens_still_reads_plain_decimals(text: str, amount: int) -> None:
    assert tokens(text) == amount


def test_tokens_refuses_bools_floats_and_absurd_lengths() -> None:
    for bad in (True, 1.5, None, "9" * 5000):
        with pytest.raises(ValueError):
            tokens(bad)  # type: ignore[arg-type]
    assert tokens(7) == 7 * TOKEN


def test_cli_tx_amount_with_a_sign_is_not_a_number() -> None:
    with pytest.raises(RunError, match="amount"):
        build_tx("unbond", "ab" * 32, ["amount=-0.5"])


@pytest.mark.parametrize("stake", ['"-0.5"', '"1.-5"', '"+3"', '" 2"'])
def test_config_refuses_a_signed_token_string(tmp_path: Path, stake: str) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(f"network: {{operators: [{{name: a, stake: {stake}}}]}}\n")
    with pytest.raises(ConfigError, match=r"network\.operators\.0\.stake") as err:
        load_config(path)
    assert "\n" not in str(err.value)


# --- 2. bools are not integers ---------------------------------------------------------


def staked() -> Protocol:
    """op (own 300) with delegator d (100); d holds unbonding lock 0 and lock 1."""
    p = Protocol(Params(unbonding_period=2), {n: 10_000 * TOKEN for n in ("op", "d", "client")})
    p.bond("op", "op", 300 * TOKEN)
    p.register_operator("op", reward_cut=100_000)
    p.bond("d", "op", 100 * TOKEN)
    p.initialize_round()
    assert p.unbond("d", 10 * TOKEN) == 0
    assert p.unbond("d", 20 * TOKEN) == 1
    return p


@pytest.mark.parametrize("lock_id", [True, False, -1, 1.0, "1", None])
def test_lock_ids_refuse_bools_and_non_integers(lock_id: Any) -> None:
    p = staked()
    assert_refused(p, UnknownLock, p.rebond, "d", lock_id)
    assert_refused(p, UnknownLock, p.withdraw_stake, "d", lock_id)
    for _ in range(3):
        p.initialize_round()
    assert_refused(p, UnknownLock, p.withdraw_stake, "d", lock_id)


def test_huge_ids_are_refused_in_one_line() -> None:
    p = staked()
    huge = 10**5000  # too long even to print
    for fn, args in [
        (p.rebond, ("d", huge)),
        (p.withdraw_stake, ("d", 2**63)),
        (p.refund_task, (huge,)),
        (p.vote, ("op", huge, "for")),
        (p.escrow_tasks, ("client", [(huge, TOKEN)])),
        (p.bond, ("d", "op", -huge)),
    ]:
        before = p.state_hash()
        with pytest.raises(ProtocolError) as err:
            fn(*args)
        assert "\n" not in str(err.value) and len(str(err.value)) < 200
        assert p.state_hash() == before


def test_rebond_true_is_not_lock_1() -> None:
    p = staked()
    with pytest.raises(UnknownLock, match="lock_id"):
        p.rebond("d", True)
    p.rebond("d", 1)  # the real lock 1 is still there
    assert set(p.locks("d")) == {0}


def test_collateral_lock_ids_and_capacity_refuse_bools() -> None:
    p = staked()
    p.register_coprocessor("client", 100 * TOKEN, 2)
    p.unbond_collateral("client", TOKEN)
    p.unbond_collateral("client", TOKEN)
    for _ in range(3):
        p.initialize_round()
    assert_refused(p, UnknownLock, p.withdraw_collateral, "client", True)
    q = staked()
    for capacity in (True, False, 0, 2.0):
        assert_refused(q, InvalidAmount, q.register_coprocessor, "client", TOKEN, capacity)


def test_task_ids_refuse_bools() -> None:
    p = staked()
    p.escrow_tasks("client", [(0, TOKEN), (1, TOKEN)])
    assert_refused(p, InvalidAmount, p.escrow_tasks, "client", [(True, TOKEN)])
    assert_refused(p, UnknownTask, p.assign_task, True, "op")
    assert_refused(p, UnknownTask, p.refund_task, True)
    p.assign_task(1, "op")
    assert_refused(p, UnknownTask, p.settle_tasks, [True])
    p.settle_tasks([1])
    # A finished task 1 is skipped on a repeat; True is not task 1.
    assert_refused(p, UnknownTask, p.settle_tasks, [True])
    assert_refused(p, TaskStateError, p.audit_fault, True, "op", None)


def test_price_refuses_bools() -> None:
    p = staked()
    p.register_coprocessor("client", 100 * TOKEN, 2)
    p.escrow_tasks("client", [(0, TOKEN)])
    assert_refused(p, InvalidAmount, p.assign_task, 0, "op", "client", True)


def test_proposal_ids_refuse_bools() -> None:
    p = staked()
    assert p.propose("op", {"unbonding_period": 3}) == 0
    assert p.propose("op", {"unbonding_period": 4}) == 1
    assert_refused(p, UnknownProposal, p.vote, "op", True, "for")
    assert_refused(p, UnknownProposal, p.vote, "op", -1, "for")
    assert_refused(p, InvalidAmount, p.propose, "op", {}, {"x": True})


# --- 3. config files --------------------------------------------------------------------

NETWORK = """\
seed: 3
network:
  operators: [{name: op-a, stake: 500}]
  delegators: {count: 4, stake_min: 1, stake_max: 50}
workload:
  count: 10
  mix: [{kind: sort, size: 100}]
"""


def write(tmp_path: Path, text: str | bytes, name: str = "net.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def refused(path: Path, *needles: str, workload: bool = False) -> str:
    with pytest.raises(ConfigError) as err:
        load_workload(path) if workload else load_config(path)
    message = str(err.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def test_config_that_is_not_utf8_is_named_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"network:\n  operators: [{name: \xff\xfe, stake: 1}]\n")
    refused(path, str(path), "UTF-8")
    refused(write(tmp_path, b"count: 1\xc3\n", "w.yaml"), "w.yaml", "UTF-8", workload=True)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("seed: 1\nseed: 2\nnetwork: {operators: [{name: a, stake: 1}]}\n", "seed", 2),
        ("network:\n  operators: [{name: a, stake: 1, stake: 2}]\n", "stake", 2),
        (
            "network:\n  operators: [{name: a, stake: 1}]\n  delegators: {count: 1}\n"
            "  delegators: {count: 2}\n",
            "delegators",
            4,
        ),
        ("network:\n  operators: [{name: a, stake: 1}]\nnetwork: {}\n", "network", 3),
    ],
)
def test_duplicate_keys_are_refused_naming_key_and_line(
    tmp_path: Path, text: str, key: str, line: int
) -> None:
    refused(write(tmp_path, text), f"line {line}", f"duplicate key {key!r}")


def test_merge_keys_still_work(tmp_path: Path) -> None:
    text = NETWORK.replace("[{name: op-a, stake: 500}]", "[{<<: {stake: 5}, name: op-a}]")
    config = load_config(write(tmp_path, text))
    assert config.network.operators[0].stake == 5 * TOKEN


def test_stake_min_above_stake_max_is_refused(tmp_path: Path) -> None:
    text = NETWORK.replace("stake_min: 1, stake_max: 50", "stake_min: 60, stake_max: 50")
    refused(write(tmp_path, text), "network.delegators", "stake_min", "stake_max")


def test_delegator_stakes_lie_in_the_configured_range(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, NETWORK.replace("stake_max: 50", "stake_max: 1")))
    assert [s for _, _, s in delegator_stakes(config)] == [TOKEN] * 4


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            NETWORK.replace("count: 4,", f"count: {10**12},"),
            ["network.delegators.count", str(MAX_DELEGATORS)],
        ),
        (NETWORK.replace("size: 100", f"size: {10**9}"), ["workload.mix.0", "size", "sort"]),
        (
            NETWORK.replace("kind: sort, size: 100", "kind: matmul, size: 1000000000"),
            ["workload.mix.0", "matmul"],
        ),
        (NETWORK.replace("count: 10\n", f"count: {10**9}\n"), ["workload.count"]),
        (
            NETWORK.replace("count: 10\n", "count: 10\n  rate_per_s: 1e-9\n"),
            ["workload", "rate_per_s", f"{MAX_SPAN_S:.0f} s"],
        ),
        (NETWORK.replace("count: 10\n", "duration_s: 1e9\n"), ["workload.duration_s"]),
        (
            NETWORK.replace("count: 10\n", "duration_s: 86400\n  rate_per_s: 1000\n"),
            ["workload", "expected tasks", f"{MAX_TASKS:,}"],
        ),
        (
            NETWORK.replace(
                "count: 10\n",
                "duration_s: 86400\n  rate_per_s: 100\n  bursts:"
                " [{start_s: 0, duration_s: 1, multiplier: 1000}]\n",
            ),
            ["workload", "arrival draws", f"{MAX_ARRIVAL_DRAWS:,}"],
        ),
        (NETWORK.replace("count: 10\n", "count: 10\n  rate_per_s: 1e7\n"), ["workload.rate_per_s"]),
        (
            NETWORK.replace(
                "count: 10\n",
                "count: 10\n  bursts: [{start_s: 0, duration_s: 1, multiplier: 1e12}]\n",
            ),
            ["workload.bursts.0.multiplier"],
        ),
        (
            NETWORK.replace("count: 10\n", "count: 10\n  fees: {mean: 1e300}\n"),
            ["workload.fees.mean"],
        ),
        (
            NETWORK.replace("count: 10\n", "count: 10\n  fees: {shape: lognormal, sigma: 1000}\n"),
            ["workload.fees.sigma"],
        ),
        (NETWORK.replace("count: 10\n", "count: 10\n  seed: -1\n"), ["workload.seed"]),
        (NETWORK.replace("seed: 3", "seed: -3"), ["seed"]),
        (
            NETWORK.replace("count: 10\n", "count: 10\n  deadline_rounds: 100000000000\n"),
            ["workload.deadline_rounds"],
        ),
        (
            NETWORK.replace(
                "[{name: op-a, stake: 500}]",
                "["
                + ", ".join(f"{{name: o{i}, stake: 1}}" for i in range(MAX_OPERATORS + 1))
                + "]",
            ),
            ["network.operators"],
        ),
    ],
)
def test_sizes_and_counts_are_bounded(tmp_path: Path, text: str, needles: list[str]) -> None:
    refused(write(tmp_path, text), *needles)


def test_bounds_are_generous_for_real_use(tmp_path: Path) -> None:
    text = NETWORK.replace("count: 4,", "count: 1000000,").replace(
        "count: 10\n", "count: 10000000\n  rate_per_s: 1000\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.network.delegators.count == MAX_DELEGATORS == 1_000_000
    assert config.workload is not None and config.workload.count == MAX_TASKS == 10_000_000
    assert MAX_COPROCESSORS >= 10_000 and MAX_ACCOUNTS >= 100_000 and MAX_ARRIVAL_DRAWS >= 10**8
    assert MAX_SIZE["matmul"] >= 4096 and MAX_SIZE["sort"] >= 10**8


def test_task_spec_uses_the_same_size_bound() -> None:
    for kind, limit in MAX_SIZE.items():
        TaskSpec(kind, limit)
        with pytest.raises(ValueError, match="size"):
            TaskSpec(kind, limit + 1)


def test_with_count_is_bounded_too(tmp_path: Path) -> None:
    workload = load_workload(write(tmp_path, "count: 5\nmix: [{kind: sort, size: 10}]\n"))
    assert len(generate_tasks(workload.with_count(3))) == 3
    for bad in (0, -1, MAX_TASKS + 1, True):
        with pytest.raises(ConfigError, match="count"):
            workload.with_count(bad)


# --- 4. the command line --------------------------------------------------------------------

LOCAL = ["--quiet", "--local", "--no-pace"]


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and needle in stderr, stderr
    assert sum(line.startswith("stakeray") for line in stderr.splitlines()) == 1


@pytest.mark.parametrize("count", ["0", "-5", "x", "1.5", str(10**9)])
def test_count_must_be_a_positive_bounded_int(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: str
) -> None:
    config = str(write(tmp_path, NETWORK))
    out = str(tmp_path / "out")
    usage_error(capsys, ["run", config, "--out", out, *LOCAL, "--count", count], "--count")
    usage_error(capsys, ["submit", config, "--dir", out, "--count", count], "--count")
    assert not (tmp_path / "out").exists()


def test_nonce_must_not_be_negative(capsys: pytest.CaptureFixture[str]) -> None:
    usage_error(capsys, ["tx", "bond", "--key", "k", "--nonce", "-1"], "--nonce")


@pytest.mark.parametrize("option", [["--rounds", "0"], ["--rounds", "-2"]])
def test_simulate_rounds_must_be_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    usage_error(capsys, ["simulate", "x.yaml", "--out", str(tmp_path), *option], "--rounds")


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def test_out_naming_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write(tmp_path, NETWORK))
    target = write(tmp_path, "keep me\n", "file.txt")
    for extra in ([], ["--overwrite"]):
        one_error(capsys, ["run", config, "--out", str(target), *LOCAL, *extra], "not a directory")
        one_error(capsys, ["up", config, "--out", str(target), *extra], "not a directory")
    assert target.read_text() == "keep me\n"


def test_out_holding_other_files_needs_overwrite_and_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write(tmp_path, NETWORK))
    out = tmp_path / "home"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "sub").mkdir()
    (out / "sub" / "tasks.csv").write_text("mine too\n")
    one_error(
        capsys,
        ["run", config, "--out", str(out), *LOCAL],
        f"--out {out}: holds files that are not a stakeray run",
        "--overwrite",
    )
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "sub"]
    assert main(["run", config, "--out", str(out), *LOCAL, "--overwrite", "--count", "3"]) == 0
    assert main(["run", config, "--out", str(out), *LOCAL, "--overwrite", "--count", "4"]) == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "sub" / "tasks.csv").read_text() == "mine too\n"
    assert json.loads((out / "summary.json").read_text())["tasks_submitted"] == 4


def test_out_with_a_symlinked_run_file_never_writes_through_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write(tmp_path, NETWORK))
    outside = write(tmp_path, "outside\n", "outside.csv")
    out = tmp_path / "run"
    out.mkdir()
    (out / "tasks.csv").symlink_to(outside)
    one_error(capsys, ["run", config, "--out", str(out), *LOCAL], "not a stakeray run")
    assert main(["run", config, "--out", str(out), *LOCAL, "--overwrite", "--count", "2"]) == 0
    assert outside.read_text() == "outside\n"
    assert not (out / "tasks.csv").is_symlink()


def test_a_refused_run_leaves_out_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write(tmp_path, NETWORK))
    out = tmp_path / "run"
    assert main(["run", config, "--out", str(out), *LOCAL, "--count", "2"]) == 0
    before = sorted(p.name for p in out.iterdir())
    summary = (out / "summary.json").read_text()
    one_error(
        capsys, ["run", config, "--out", str(out), *LOCAL, "--overwrite", "--chaos", "x"], "--chaos"
    )
    bad = str(write(tmp_path, NETWORK.replace("count: 10", "count: 0"), "bad.yaml"))
    one_error(capsys, ["run", bad, "--out", str(out), *LOCAL, "--overwrite"], "workload.count")
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "summary.json").read_text() == summary
    assert not (tmp_path / "new").exists()
    one_error(capsys, ["run", bad, "--out", str(tmp_path / "new"), *LOCAL], "workload.count")
    assert not (tmp_path / "new").exists()


def test_an_empty_or_new_out_is_fine_and_a_run_needs_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write(tmp_path, NETWORK))
    (tmp_path / "empty").mkdir()
    assert main(["run", config, "--out", str(tmp_path / "empty"), *LOCAL]) == 0
    one_error(capsys, ["run", config, "--out", str(tmp_path / "empty"), *LOCAL], "already holds")
    assert main(["run", config, "--out", str(tmp_path / "new" / "deeper"), *LOCAL]) == 0


EXPERIMENT = """\
name: tiny
rounds: 2
operators: {count: 2}
coprocessors: {count: 2}
tasks: {per_round: 5}
"""


def test_simulate_overwrite_removes_only_its_own_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = str(write(tmp_path, EXPERIMENT, "exp.yaml"))
    out = tmp_path / "exp"
    out.mkdir()
    (out / "summary.json").write_text("{}\n")
    (out / "notes.txt").write_text("mine\n")
    args = ["simulate", experiment, "--out", str(out), "--quiet"]
    one_error(capsys, args, f"--out {out}: holds files that are not a stakeray")
    one_error(capsys, [*args, "--resume"], "not a stakeray")
    assert main([*args, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert json.loads((out / "summary.json").read_text())["experiment"] == "tiny"
    target = write(tmp_path, "keep\n", "file.txt")
    one_error(capsys, ["simulate", experiment, "--out", str(target)], "not a directory")
    assert target.read_text() == "keep\n"


# --- 5. the Ray token ---------------------------------------------------------------------


FAKE_RAY = """\
import pathlib, sys
path = pathlib.Path.home() / ".ray" / "auth_token"
path.parent.mkdir(parents=True, exist_ok=True)
if not path.exists():
    with open(path, "w") as fh:  # as Ray's generate_and_save_token: the umask decides
        fh.write("t0ken")
"""


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from cluster.runtime import head

    home = tmp_path / "home"
    home.mkdir()
    script = write(tmp_path, FAKE_RAY, "fake_ray.py")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(head, "ray_command", lambda: [sys.executable, str(script)])
    old = os.umask(0o022)
    yield home
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_file_is_created_0600(fake_home: Path) -> None:
    from cluster.runtime.head import ensure_token, token_path

    ensure_token()
    assert token_path() == fake_home / ".ray" / "auth_token"
    assert mode(token_path()) == 0o600
    assert token_path().read_text() == "t0ken"


def test_an_existing_wide_token_file_is_tightened(fake_home: Path) -> None:
    from cluster.runtime.head import ensure_token, token_path

    token_path().parent.mkdir()
    token_path().write_text("old")
    token_path().chmod(0o644)
    ensure_token()
    assert mode(token_path()) == 0o600 and token_path().read_text() == "old"


@pytest.mark.skipif(
    not shutil.which("ray") and not (Path(sys.executable).parent / "ray").exists(),
    reason="needs Ray's command line",
)
def test_the_real_ray_token_is_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cluster.runtime.head import ensure_token, token_path

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    old = os.umask(0o022)
    try:
        ensure_token()
    finally:
        os.umask(old)
    assert token_path() == tmp_path / ".ray" / "auth_token"
    assert mode(token_path()) == 0o600 and mode(token_path().parent) == 0o700
