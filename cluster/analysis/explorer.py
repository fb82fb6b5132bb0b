"""``stakeray explorer``: a live web view of a network, served from its ledger directory.

The explorer is a reader beside the network, never in its path: a thread
tails ``events.log`` (:class:`~cluster.analysis.log_tail.LogTail`: read-only,
no lock, only the frames added since the last read) about once a second into
a :class:`~cluster.analysis.live_history.LiveHistory` kept in this process,
and a standard-library HTTP server renders pages from it
(:mod:`cluster.analysis.explorer_pages`). Nothing is written anywhere and
nothing is asked of the coordinator, so the market runs as fast with it as
without it. Pages refresh themselves every couple of seconds (a small script
the explorer serves; a meta refresh without JavaScript), and every table
downloads as CSV with ``?format=csv&table=ID``.

Routes: ``/`` (network), ``/operators``, ``/operator/NAME``,
``/delegator?address=ADDRESS`` (all stakers without one),
``/earnings?address=ADDRESS``, ``/coprocessors``, ``/distribution``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from cluster.analysis import explorer_pages as pages
from cluster.analysis.earnings import EarningsError, EarningsRow, reconcile, replay_earnings
from cluster.analysis.explorer_html import SCRIPT, STYLE, Page, esc, shell
from cluster.analysis.history import read_market_setup
from cluster.analysis.live_history import LiveHistory
from cluster.analysis.log_tail import LogTail, ledger_dir_of
from protocol import transactions as tx
from protocol.errors import StakerayError
from protocol.units import Address

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
POLL_S = 1.0
"""Seconds between reads of the log."""
REFRESH_S = 2.0
"""Seconds between a page's refreshes in the browser."""
EARNINGS_EVERY_S = 5.0
"""An account's earnings (a replay of its own) are redone at most this often."""
READ_LIMIT = 5000
"""Frames applied per hold of the lock: pages keep answering while a long log is read."""

Builder = Callable[[pages.Source, Mapping[str, str]], Page]
ROUTES: dict[str, Builder] = {
    "/": pages.network_page,
    "/operators": pages.operators_page,
    "/delegator": pages.delegator_page,
    "/delegators": pages.delegator_page,
    "/earnings": pages.earnings_page,
    "/coprocessors": pages.coprocessors_page,
    "/distribution": pages.distribution_page,
}


class Explorer:
    """A live explorer of the run directory (or ledger directory) ``directory``.

    :meth:`start` reads the whole log once, then serves on ``host:port``
    (port 0: any free port; :attr:`url` says which) and reads the log's new
    frames every ``poll_s`` seconds until :meth:`close`.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        poll_s: float = POLL_S,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.ledger_dir = ledger_dir_of(directory)
        self.run_dir = (
            self.ledger_dir.parent if self.ledger_dir.name == "ledger" else (self.ledger_dir)
        )
        self.tail = LogTail(self.ledger_dir)
        self.poll_s = poll_s
        self.refresh_s = refresh_s
        self.history: LiveHistory | None = None
        self.error = ""
        self.read_at: float | None = None  # wall-clock time of the last read
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._earnings: dict[Address, tuple[float, Any]] = {}
        self._earnings_lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    # --- reading the log -----------------------------------------------------------------

    def refresh(self, now: float | None = None) -> int:
        """Read the log's new frames into the history; return how many were applied."""
        applied = 0
        while not self._stop.is_set():
            try:
                restarted, frames = self.tail.read(READ_LIMIT)
            except (OSError, StakerayError) as exc:
                self.error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                return applied
            with self.lock:
                try:
                    applied += self._apply(restarted, frames)
                except StakerayError as exc:
                    self.error = f"stopped reading: {str(exc).splitlines()[0]}"
                    self._stop.set()
                    return applied
                stamp = time.monotonic() if now is None else now
                if self.history is not None:
                    self.history.end_read(stamp, caught_up=not self.tail.more)
                self.read_at = time.time()
                self.error = ""
            if not self.tail.more:
                return applied
        return applied

    def _apply(self, restarted: bool, frames: list[tx.Tx]) -> int:
        if restarted:
            self.history = None
        if not frames:
            return 0
        start = 0
        if self.history is None:
            genesis = frames[0]
            assert isinstance(genesis, tx.Genesis)  # LogTail checks frame 0
            self.history = LiveHistory(genesis, read_market_setup(self.ledger_dir))
            self._earnings.clear()
            start = 1
        for frame in frames[start:]:
            self.history.apply(frame)
        return len(frames)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    # --- serving -------------------------------------------------------------------------

    def start(self) -> Explorer:
        """Read the log up to its end, then serve and keep reading in background threads."""
        self.refresh()
        for target in (self._poll, self.server.serve_forever):
            thread = threading.Thread(target=target, name="stakeray-explorer", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop serving and reading."""
        self._stop.set()
        if self._threads:
            self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> Explorer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- pages ---------------------------------------------------------------------------

    def render(self, path: str, query: Mapping[str, str]) -> tuple[HTTPStatus, str, str, str]:
        """Return ``(status, content type, body, CSV file name)`` for a page or its CSV."""
        builder: Builder | None = ROUTES.get(path)
        name = ""
        if builder is None and path.startswith("/operator/"):
            name = unquote(path.removeprefix("/operator/"))

            def builder(src: pages.Source, q: Mapping[str, str]) -> Page:
                return pages.operator_page(src, q, name)

        earnings = self.earnings
        address = query.get("address", "").strip()
        if path == "/earnings" and address:
            # Its own replay of the log: done before taking the lock the reader needs.
            try:
                ready = self.earnings(address)
            except EarningsError as exc:
                failure = exc

                def earnings(_: Address) -> tuple[list[EarningsRow], list[str], int]:
                    raise failure
            else:

                def earnings(_: Address) -> tuple[list[EarningsRow], list[str], int]:
                    return ready

        with self.lock:
            if self.history is None:
                return HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", "the ledger is being read", ""
            status = self.status_line()
            source = pages.Source(
                self.history, self.run_dir, self.ledger_dir, self.summary(), earnings
            )
            try:
                if builder is None:
                    raise pages.NotFound(f"no page at {path}")
                page = builder(source, query)
            except pages.NotFound as exc:
                page = Page("", "Not found", query)
                page.add(f'<p class="warning">{esc(exc)}</p>')
                return HTTPStatus.NOT_FOUND, "text/html", shell(page, status, self.refresh_s), ""
        if query.get("format") == "csv":
            wanted = query.get("table") or next(iter(page.tables), "")
            table = page.tables.get(wanted)
            if table is None:
                ids = ", ".join(page.tables)
                return HTTPStatus.NOT_FOUND, "text/plain", f"no table {wanted!r} here ({ids})", ""
            return HTTPStatus.OK, "text/csv", table.csv(), f"{page.name or 'page'}-{wanted}.csv"
        return HTTPStatus.OK, "text/html", shell(page, status, self.refresh_s), ""

    def summary(self) -> dict[str, Any]:
        """The run's ``summary.json`` once the run is finished; empty before."""
        path = self.run_dir / "summary.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return {}

    def status_line(self) -> str:
        h = self.history
        assert h is not None
        read = "never"
        if self.read_at is not None:
            read = time.strftime("%H:%M:%S", time.localtime(self.read_at))
        finished = (self.run_dir / "summary.json").is_file()
        state = "finished (summary.json written)" if finished else "live"
        error = f' · <span class="error">{esc(self.error)}</span>' if self.error else ""
        return (
            f"{esc(self.run_dir)} · round <b>{h.protocol.round}</b> · {h.frames:,} frames"
            f" ({self.tail.offset:,} bytes) · read {read} · {state}{error}"
        )

    def earnings(self, address: Address) -> tuple[list[EarningsRow], list[str], int]:
        """``address``'s earnings rows, their reconciliation and the round they reach.

        A replay of its own (:func:`cluster.analysis.earnings.replay_earnings`),
        kept for :data:`EARNINGS_EVERY_S` seconds.
        """
        with self._earnings_lock:
            cached = self._earnings.get(address)
            if cached is not None and time.monotonic() - cached[0] < EARNINGS_EVERY_S:
                return cached[1]  # type: ignore[no-any-return]
            protocol, rows = replay_earnings(self.ledger_dir, address)
            result = (rows, reconcile(protocol, address, rows), protocol.round)
            self._earnings[address] = (time.monotonic(), result)
            return result


def _handler(explorer: Explorer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "stakeray-explorer"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = dict(parse_qsl(url.query))
            if url.path == "/static/explorer.css":
                self.send(HTTPStatus.OK, "text/css", STYLE, cache=True)
            elif url.path == "/static/explorer.js":
                self.send(HTTPStatus.OK, "text/javascript", SCRIPT, cache=True)
            elif url.path == "/favicon.ico":
                self.send(HTTPStatus.NO_CONTENT, "text/plain", "")
            else:
                status, kind, body, name = explorer.render(url.path, query)
                self.send(status, kind, body, name=name)

        def send(
            self, status: HTTPStatus, kind: str, body: str, *, cache: bool = False, name: str = ""
        ) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
            if name:
                self.send_header("Content-Disposition", f'attachment; filename="{name}"')
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the command prints its address once

    return Handler
