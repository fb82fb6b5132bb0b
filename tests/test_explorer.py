"""``stakeray explorer``: every page over HTTP, numbers equal to the ledger's, live updates,
CSV downloads, and screenshots in headless Chromium (docs/explorer/)."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from test_cli import NETWORK
from test_report import PNG_MAGIC, find_chromium

from cluster.analysis.explorer import Explorer
from cluster.analysis.history import read_market_setup, replay_rounds
from cluster.analysis.live_history import LiveHistory
from cluster.analysis.log_tail import LogTail
from cluster.cli import main
from cluster.cli.app import build_parser
from cluster.config.schema import RunConfig
from cluster.config.workload import WorkloadSpec, generate_tasks
from cluster.engine.transport import LocalTransport
from cluster.runtime.actors import deploy_local
from cluster.runtime.runner import feed
from protocol import TOKEN, Params, metrics
from protocol.governance import compute_tally
from protocol.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "explorer"
TALL = {"distribution": 3000, "network": 2300}
"""Screenshot heights (pixels) of the pages whose charts run long."""
LIVE_WORKLOAD = {
    "count": 240,
    "rate_per_s": 60,
    "mix": [{"kind": "sort", "size": 2000}, {"kind": "matmul", "size": 48}],
}


# --- reading pages --------------------------------------------------------------------------


class Tables(HTMLParser):
    """The tables of a page: ``{table id: [{column key: td attributes + text}]}``, and its
    figures (``stats``: ``{key: value element's attributes + text}``)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, dict[str, str]]]] = {}
        self.stats: dict[str, dict[str, str]] = {}
        self.stat: str | None = None
        self.table: str | None = None
        self.keys: list[str] = []
        self.row: list[dict[str, str]] | None = None
        self.cell: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.table, self.keys = a["data-table"], []
            self.tables[self.table] = []
        elif tag == "th" and self.table:
            self.keys.append(a["data-key"])
        elif tag == "tr" and self.table:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = {**a, "text": ""}
        elif tag == "div" and a.get("class") == "stat":
            self.stat = a["data-key"]
        elif tag == "div" and self.stat and "value" in a.get("class", "").split():
            self.cell = self.stats[self.stat] = {**a, "text": ""}

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.stat and self.cell is not None:
            self.cell, self.stat = None, None
        elif tag == "td" and self.row is not None and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None and self.table:
            if self.row:
                self.tables[self.table].append(dict(zip(self.keys, self.row, strict=True)))
            self.row = None
        elif tag == "table":
            self.table = None


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def parse(url: str) -> Tables:
    status, _, body = get(url)
    assert status == 200, (url, body[:500])
    parser = Tables()
    parser.feed(body)
    return parser


def tables(url: str) -> dict[str, list[dict[str, dict[str, str]]]]:
    return parse(url).tables


def network_now(base: str) -> dict[str, str]:
    rows = csv.DictReader(io.StringIO(get(base + "?format=csv&table=network")[2]))
    return {r["key"]: r["value"] for r in rows}


def wait_caught_up(base: str, ledger: Path, timeout: float = 10.0) -> dict[str, str]:
    """Poll until the network page shows the ledger's round, supply and active stake."""
    deadline = time.monotonic() + timeout
    while True:
        p = Ledger.replay(ledger)
        now = network_now(base)
        want = (str(p.round), str(p.total_supply), str(p.total_active_stake))
        if (now["round"], now["total_supply"], now["active_stake"]) == want:
            return now
        assert time.monotonic() < deadline, f"the explorer shows {now}, the ledger {want}"
        time.sleep(0.2)


# --- the run and the explorer ---------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("explorer")
    config = tmp / "net.yaml"
    config.write_text(NETWORK)
    out = tmp / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet", "--local", "--no-pace"]) == 0
    return out


def files_of(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def served(run_dir: Path) -> Iterator[tuple[str, dict[str, tuple[int, int]]]]:
    """``stakeray explorer --dir RUN --port 0`` in a subprocess; yield its URL."""
    before = files_of(run_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "cluster.cli", "explorer", "--dir", str(run_dir)]
    proc = subprocess.Popen(
        [*command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        url = None
        while url is None:
            line = proc.stdout.readline()  # the explorer prints its address once it has read
            if not line:
                break
            lines.append(line)
            found = re.search(r"explorer on (http://\S+/)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(lines)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    try:
        yield url, before
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "explorer stopped" in out


def pages(run_dir: Path) -> dict[str, str]:
    """Every page: name -> path (the delegator is the biggest one that is not an operator)."""
    p = Ledger.replay(run_dir / "ledger")
    delegator = max(
        (a for a, d in p.state.delegators.items() if d.delegate != a),
        key=lambda a: (p.pending_stake(a), a),
    )
    return {
        "network": "",
        "operators": "operators",
        "operator": "operator/op-b",
        "delegators": "delegator",
        "delegator": f"delegator?address={delegator}",
        "earnings": f"earnings?address={delegator}",
        "coprocessors": "coprocessors",
        "distribution": "distribution",
    }


# --- the tests ------------------------------------------------------------------------------


def test_every_page_renders_its_tables_and_charts_and_reads_only(
    run_dir: Path, served: tuple[str, dict[str, tuple[int, int]]]
) -> None:
    base, before = served
    assert base.startswith("http://127.0.0.1:")
    for name, path in pages(run_dir).items():
        status, kind, body = get(base + path)
        assert status == 200 and kind.startswith("text/html"), (name, body[:300])
        assert "<table" in body and "CSV</a>" in body, name
        if name != "delegators":
            assert "<svg" in body and ("<polyline" in body or "<circle" in body), name
        assert "http://" not in body and "https://" not in body, name  # nothing from elsewhere
        for ref in re.findall(r'(?:src|href|action)\s*=\s*"([^"]*)"', body):
            assert ref.startswith(("/", "?")), (name, ref)
        for table in re.findall(r'data-table="([^"]+)"', body):
            text = get(f"{base}{path}{'&' if '?' in path else '?'}format=csv&table={table}")[2]
            rows = list(csv.reader(io.StringIO(text)))
            assert rows and rows[0], (name, table)
    assert get(base + "static/explorer.css")[0] == 200
    assert "setTimeout" in get(base + "static/explorer.js")[2]
    status, _, body = get(base + "operator/nobody")
    assert status == 404 and "no registered operator" in body
    assert files_of(run_dir) == before  # the explorer wrote nothing


def test_numbers_equal_the_ledgers(
    run_dir: Path, served: tuple[str, dict[str, tuple[int, int]]]
) -> None:
    base = served[0]
    ledger = run_dir / "ledger"
    wait_caught_up(base, ledger)
    p = Ledger.replay(ledger)
    now = network_now(base)
    assert int(now["round"]) == p.round
    assert int(now["total_supply"]) == p.total_supply
    assert int(now["active_stake"]) == p.total_active_stake
    assert int(now["inflation_ppb"]) == p.inflation
    assert int(now["tasks_settled"]) == p.state.outcome_counts.get("settled", 0)
    # Full precision on hover: tokens to the 18th decimal, and the base units.
    shown = parse(base).stats
    whole, frac = divmod(p.total_supply, TOKEN)
    assert (
        shown["total_supply"]["title"]
        == f"{whole}.{frac:018d} tokens ({p.total_supply} base units)"
    )
    assert shown["total_supply"]["text"] == f"{whole:,}.{frac // 10**14:04d}"
    assert int(shown["round"]["data-value"]) == p.round

    operators = tables(base + "operators")["operators"]
    assert {r["operator"]["text"] for r in operators} == {"op-a", "op-b"}
    for r in operators:
        assert int(r["stake"]["data-value"]) == p.operator_stake(r["operator"]["text"])
    listed = csv.DictReader(io.StringIO(get(base + "operators?format=csv&table=operators")[2]))
    for r in listed:
        assert int(r["stake"]) == p.operator_stake(r["operator"])
        assert (int(r["reward_cut"]), int(r["fee_share"])) == p.commission(r["operator"])
    missed = {r["operator"]["text"]: int(r["missed_reward_calls"]["data-value"]) for r in operators}
    assert missed["op-a"] == 0 and missed["op-b"] > 0  # op-b has miss_rate 0.5
    flagged = [r for r in operators if r["missed_reward_calls"].get("data-warn")]
    assert [r["operator"]["text"] for r in flagged] == ["op-b"]

    # The per-round rows are rounds.csv's: the same replay attribution.
    _, rows = replay_rounds(ledger)
    per_round = csv.DictReader(io.StringIO(get(base + "operators?format=csv&table=per_round")[2]))
    shown = {(int(r["round"]), r["operator"]): r for r in per_round}
    for row in rows:
        if row.role == "operator":
            mine = shown[(row.round, row.participant)]
            assert (int(mine["stake"]), int(mine["rewards"]), int(mine["fees"])) == (
                row.stake,
                row.rewards,
                row.fees,
            )

    for r in tables(base + "coprocessors")["coprocessors"]:
        c = p.state.coprocessors[r["coprocessor"]["text"]]
        assert int(r["collateral"]["data-value"]) == c.free + c.locked
        assert int(r["slashes"]["data-value"]) == c.slashes

    path = pages(run_dir)["delegator"]
    address = path.split("=", 1)[1]
    values = {k: v["data-value"] for k, v in parse(base + path).stats.items()}
    assert int(values["pending_stake"]) == p.pending_stake(address)
    assert int(values["pending_fees"]) == p.pending_fees(address)
    assert values["operator"] == p.delegate_of(address)
    assert "/earnings?address=" in get(base + path)[2]
    earnings = csv.DictReader(io.StringIO(get(f"{base}earnings?address={address}&format=csv")[2]))
    last = max(earnings, key=lambda r: int(r["round"]))
    assert int(last["pending_stake"]) == p.pending_stake(address)

    concentration = tables(base + "distribution")["concentration"]
    stake = next(
        r for r in concentration if r["distribution"]["text"].startswith("stake across st")
    )
    stakes = [p.pending_stake(a) for a in p.state.delegators if p.pending_stake(a) > 0]
    assert float(stake["gini"]["data-value"]) == metrics.compute_gini(stakes)
    assert int(stake["total"]["data-value"]) == sum(stakes)
    assert int(stake["nakamoto_third"]["data-value"]) == metrics.compute_nakamoto_coefficient(
        stakes
    )


def test_the_page_follows_a_workload_while_it_runs(
    run_dir: Path, served: tuple[str, dict[str, tuple[int, int]]]
) -> None:
    base = served[0]
    ledger = run_dir / "ledger"
    wait_caught_up(base, ledger)
    start = Ledger.replay(ledger).round
    (run_dir / "summary.json").unlink()  # the network is live again
    config = RunConfig.model_validate(yaml.safe_load(NETWORK))
    workload = WorkloadSpec.model_validate(LIVE_WORKLOAD)
    deployment = deploy_local(config, run_dir, fsync=False)  # the coordinator reopens the ledger
    done = threading.Event()

    def work() -> None:
        try:
            feed(
                deployment,
                LocalTransport(),
                config,
                generate_tasks(workload),
                deadline_rounds=workload.deadline_rounds,
                paced=True,
                progress=False,
            )
            coordinator = deployment.coordinator
            coordinator.drain()
            # A commission change and a vote, in force (and open) from the next round.
            coordinator.p.set_commission("op-a", 50_000, 950_000)
            proposal = coordinator.p.propose("op-a", {"inflation_change": 600}, {})
            coordinator.p.vote("op-a", proposal, "for")
            coordinator.advance_round()
        finally:
            deployment.coordinator.close()
            done.set()

    thread = threading.Thread(target=work)
    thread.start()
    seen: list[int] = []
    try:
        while not done.is_set():
            seen.append(int(network_now(base)["round"]))
            time.sleep(0.25)
    finally:
        thread.join(timeout=60)
    finished = time.monotonic()
    assert len(set(seen)) >= 2 and max(seen) > start, seen  # it moved while the tasks ran
    now = wait_caught_up(base, ledger, timeout=5.0)  # and is exact a few seconds after
    assert time.monotonic() - finished < 5.0
    assert int(now["round"]) > start
    p = Ledger.replay(ledger)
    commission = csv.DictReader(io.StringIO(get(base + "operators?format=csv&table=commission")[2]))
    changes = [r for r in commission if r["operator"] == "op-a"]
    assert [(int(r["reward_cut"]), int(r["fee_share"])) for r in changes] == [
        (100_000, 900_000),
        (50_000, 950_000),
    ]
    assert int(changes[-1]["from_round"]) == p.round == int(changes[-1]["requested_round"]) + 1
    proposals = list(csv.DictReader(io.StringIO(get(base + "?format=csv&table=proposals")[2])))
    tally = compute_tally(p.state.proposals[0])
    assert [(r["id"], r["status"], int(r["for"])) for r in proposals] == [
        ("0", "open", tally["for"])
    ]
    assert tally["for"] > 0
    rates = csv.DictReader(io.StringIO(get(base + "?format=csv&table=rounds")[2]))
    live = [float(r["tasks_per_s"]) for r in rates if r["tasks_per_s"]]
    assert live and all(rate >= 0 for rate in live)  # rounds seen live have a rate


@pytest.mark.skipif(find_chromium() is None, reason="no chromium binary on PATH")
def test_pages_in_headless_chromium(
    run_dir: Path, served: tuple[str, dict[str, tuple[int, int]]], tmp_path: Path
) -> None:
    """Screenshot every page (into docs/explorer/ with STAKERAY_UPDATE_SCREENSHOTS=1); the
    refresh script runs."""
    base = served[0]
    wait_caught_up(base, run_dir / "ledger")
    chromium = find_chromium()
    assert chromium is not None
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    flags += ["--hide-scrollbars"]
    running = []
    for name, path in pages(run_dir).items():
        target = tmp_path / f"{name}.png"
        height = TALL.get(name, 1500)
        command = [*flags, f"--window-size=1280,{height}", f"--user-data-dir={tmp_path / name}"]
        command += [f"--screenshot={target}", base + path]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        running.append((name, target, proc))
    dom = subprocess.run(
        [
            *flags,
            f"--user-data-dir={tmp_path / 'dom'}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            base + "operators",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 'data-refresh="on"' in dom.stdout, dom.stderr[-2000:]
    assert "<svg" in dom.stdout and "op-b" in dom.stdout
    for name, target, proc in running:
        _, err = proc.communicate(timeout=60)
        data = target.read_bytes() if target.is_file() else b""
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000, (name, err[-2000:])
        if os.environ.get("STAKERAY_UPDATE_SCREENSHOTS"):  # docs/explorer.md's pictures
            shutil.copyfile(target, SHOTS / f"{name}.png")


# --- the command and the parts --------------------------------------------------------------


def test_the_command_binds_localhost_unless_told() -> None:
    args = build_parser().parse_args(["explorer", "--dir", "somewhere"])
    assert args.host == "127.0.0.1" and args.port == 8765
    args = build_parser().parse_args(["explorer", "--address", "head:6379", "--host", "0.0.0.0"])
    assert args.host == "0.0.0.0" and args.dir is None
    for wrong in ([], ["--dir", "a", "--address", "b"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["explorer", *wrong])


def test_address_reads_the_directory_the_coordinator_names(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--address``: the network's ``describe()`` names the run directory (faked here: a
    cluster is not needed to check what the command does with the answer)."""
    import cluster.cli.app as app

    where = {"directory": run_dir}

    @contextmanager
    def connected(address: str | None, directory: str | None) -> Iterator[SimpleNamespace]:
        assert (address, directory) == ("head:6379", None)
        yield SimpleNamespace(directory=where["directory"])

    def stop(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "connected", connected)
    monkeypatch.setattr(time, "sleep", stop)
    assert main(["explorer", "--address", "head:6379", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"explorer on http://127\.0\.0\.1:\d+/ \(round \d+\)", out), out
    assert "explorer stopped" in out
    where["directory"] = run_dir / "elsewhere"
    assert main(["explorer", "--address", "head:6379"]) == 2
    err = capsys.readouterr().err
    assert "coordinator's node" in err and "\n" not in err.strip()


def test_explorer_defaults_to_localhost(run_dir: Path) -> None:
    explorer = Explorer(run_dir, port=0)
    try:
        assert explorer.server.server_address[0] == "127.0.0.1"
    finally:
        explorer.close()


def test_not_a_run_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explorer", "--dir", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not a run directory" in err and "\n" not in err


def test_the_live_history_is_the_replay(run_dir: Path) -> None:
    """Applied a few frames at a time, the history's rows are rounds.csv's (allocation audit
    included) and its state is the ledger's."""
    ledger = run_dir / "ledger"
    tail = LogTail(ledger)
    restarted, frames = tail.read(limit=7)
    assert not restarted and tail.more
    history = LiveHistory(frames[0], read_market_setup(ledger))  # type: ignore[arg-type]
    for frame in frames[1:]:
        history.apply(frame)
    while tail.more:
        for frame in tail.read(limit=7)[1]:
            history.apply(frame)
    assert history.protocol.state_hash() == Ledger.replay(ledger).state_hash()
    assert history.all_rows() == replay_rounds(ledger)[1]


def test_a_bare_ledger_shows_every_page(tmp_path: Path) -> None:
    """Genesis alone: no round, no operator; every page answers, charts say "no data"."""
    Ledger.create(tmp_path / "ledger", Params(), {"a": 10 * TOKEN}, fsync=False).close()
    with Explorer(tmp_path, port=0) as explorer:
        base = explorer.url
        for name, path in pages_of_a_bare_ledger().items():
            status, _, body = get(base + path)
            assert status == 200, (name, body[:300])
        assert "no data" in get(base)[2]
        status, _, body = get(base + "delegator?address=a")
        assert status == 200 and "has never bonded" in body
        assert "is not in the ledger" in get(base + "delegator?address=zz")[2]
        assert get(base + "earnings?address=zz")[0] == 404
        assert get(base + "?format=csv&table=nothing")[0] == 404


def pages_of_a_bare_ledger() -> dict[str, str]:
    return {
        "network": "",
        "operators": "operators",
        "delegators": "delegator",
        "coprocessors": "coprocessors",
        "distribution": "distribution",
    }


def test_a_log_written_anew_is_read_anew(tmp_path: Path) -> None:
    Ledger.create(tmp_path, Params(), {"a": 10 * TOKEN}, fsync=False).close()
    tail = LogTail(tmp_path)
    restarted, frames = tail.read()
    assert not restarted and len(frames) == 1 and tail.frames == 1
    assert tail.read() == (False, [])  # nothing new
    with Ledger.open(tmp_path, fsync=False) as ledger:
        ledger.protocol.transfer("a", "b", TOKEN)
        ledger.commit()
    restarted, frames = tail.read()
    assert not restarted and len(frames) == 1
    (tmp_path / "events.log").unlink()
    Ledger.create(tmp_path, Params(), {"c": 5 * TOKEN}, fsync=False).close()
    restarted, frames = tail.read()
    assert restarted and len(frames) == 1 and frames[0].balances == {"c": 5 * TOKEN}  # type: ignore[attr-defined]
