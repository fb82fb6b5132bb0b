"""Static checks of the Grafana dashboard deploy/grafana/stakeray.json.

Nothing is started (no Grafana, Prometheus or Ray). The dashboard is checked as a Grafana
dashboard model laid out like Ray's own (``ray/dashboard/modules/metrics``), and its
PromQL against the metrics stakeray exports (``cluster.engine.telemetry.METRICS``) under
the names Ray's metrics agent gives them on its Prometheus endpoint: the prefix ``ray_``,
``_total`` on a counter, ``_bucket``/``_sum``/``_count`` on a histogram, nothing on a gauge
(tests/test_deploy_loopback.py scrapes those names from a real cluster).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cluster.engine.telemetry import METRICS

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "stakeray.json"

RAY_PREFIX = "ray_"  # Ray's metrics agent: namespace "ray" + "_" + the ray.util.metrics name
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
RANGED_KINDS = {"counter", "histogram"}  # cumulative series: read through rate()/increase()
GRID_WIDTH = 24  # Grafana's grid, which Ray's dashboards fill with 12-wide panels
DATASOURCE = "${datasource}"
REQUIRED = {"uid": str, "title": str, "schemaVersion": int, "panels": list}
REQUIRED |= {"templating": dict, "time": dict, "tags": list, "version": int}
# Ray's standard_global_filters (default_dashboard_panels.py); the exporter's tags join them.
RAY_FILTERS = ('SessionName=~"$SessionName"', 'ray_io_cluster=~"$Cluster"')
TAG_KEYS = ("network",)  # cluster.runtime.metrics.TAG_KEYS, checked below against the exporter

PROMQL_WORDS = {
    # aggregation operators, keywords and literals: identifiers that are not metric names
    *("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"),
    *("bottomk", "topk", "quantile", "limitk", "limit_ratio"),
    *("by", "without", "on", "ignoring", "group_left", "group_right", "bool"),
    *("and", "or", "unless", "offset", "atan2", "inf", "nan", "Inf", "NaN"),
}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
MATCHERS = re.compile(r"\{(?:[^}\"']|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')*\}")
SELECTOR = re.compile(
    r"(?<![\w:])([A-Za-z_:][A-Za-z0-9_:]*)?\s*(\{(?:[^}\"]|\"(?:[^\"\\]|\\.)*\")*\})(\s*\[)?"
)
RANGE = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"(?<![\w$.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def load() -> dict[str, Any]:
    with DASHBOARD_FILE.open() as fh:
        return json.load(fh)


# --- reading the model ----------------------------------------------------------------------


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, the ones nested in (collapsed) rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) if panel.get("type") == "row" else ()


def graph_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in all_panels(dashboard) if p.get("type") != "row")


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*\S)\s*,\s*)?\w+\s*\)\s*$", re.DOTALL)


def variable_promql(variable: dict[str, Any]) -> str:
    """The series selector of a ``label_values(SELECTOR, label)`` variable ('' if none)."""
    if variable.get("type") != "query":
        return ""
    match = LABEL_VALUES.match(variable_query(variable))
    assert match, f"variable {variable.get('name')!r}: not a label_values() query"
    return match.group(1) or ""


def prometheus_name(metric: str, kind: str) -> list[str]:
    """The series names Ray's metrics agent serves for one entry of METRICS."""
    return [f"{RAY_PREFIX}{metric}{suffix}" for suffix in SUFFIXES[kind]]


def base_metric(name: str) -> str | None:
    """The METRICS entry a Prometheus series name belongs to: without Ray's prefix and the
    suffix the entry's kind takes (None when there is no such entry)."""
    if not name.startswith(RAY_PREFIX):
        return None
    bare = name.removeprefix(RAY_PREFIX)
    for metric, spec in METRICS.items():
        for suffix in SUFFIXES[spec.kind]:
            if bare == metric + suffix:
                return metric
    return None


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers that are neither
    functions, keywords, label names nor inside strings, matchers or ranges)."""
    text = STRING.sub('""', expr)
    text = MATCHERS.sub("{}", text)
    text = RANGE.sub("", text)
    text = GROUPING.sub("", text)
    return {
        name for name, call in IDENTIFIER.findall(text) if not call and name not in PROMQL_WORDS
    }


# --- the checks, each returning what is wrong -----------------------------------------------


def model_problems(dashboard: dict[str, Any]) -> list[str]:
    """A Grafana dashboard model that imports and lays out like Ray's dashboards."""
    out: list[str] = []
    for key, kind in REQUIRED.items():
        if not isinstance(dashboard.get(key), kind):
            out.append(f"dashboard: {key!r} missing or not {kind.__name__}")
    if dashboard.get("id") is not None:
        out.append("dashboard: 'id' must be absent or null to import on any Grafana")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(dashboard.get("uid", ""))):
        out.append("dashboard: uid must be 1-40 letters, digits, - or _")
    ids = [p.get("id") for p in all_panels(dashboard)]
    if any(not isinstance(i, int) for i in ids):
        out.append(f"panel ids must be integers: {ids}")
    duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if duplicates:
        out.append(f"duplicate panel ids: {duplicates}")
    boxes: list[tuple[str, int, int, int, int]] = []
    for panel in all_panels(dashboard):
        name = f"panel {panel.get('id')} {panel.get('title')!r}"
        if not panel.get("title") or not panel.get("type"):
            out.append(f"{name}: no title or type")
        pos = panel.get("gridPos", {})
        if not all(isinstance(pos.get(k), int) for k in "xywh"):
            out.append(f"{name}: gridPos needs integer x, y, w, h: {pos}")
            continue
        if pos["x"] < 0 or pos["y"] < 0 or pos["w"] <= 0 or pos["h"] <= 0:
            out.append(f"{name}: gridPos out of range: {pos}")
        if pos["x"] + pos["w"] > GRID_WIDTH:
            out.append(f"{name}: wider than the {GRID_WIDTH}-column grid: {pos}")
        if panel.get("type") == "row":
            if (pos["x"], pos["w"], pos["h"]) != (0, GRID_WIDTH, 1):
                out.append(f"{name}: a row spans the grid, one unit high: {pos}")
            if not isinstance(panel.get("panels"), list):
                out.append(f"{name}: a row needs a 'panels' list")
        boxes.append((name, pos["x"], pos["y"], pos["w"], pos["h"]))
    top = {f"panel {p.get('id')} {p.get('title')!r}" for p in dashboard.get("panels", [])}
    laid = [b for b in boxes if b[0] in top]  # collapsed rows' panels overlap by design
    for i, (a, ax, ay, aw, ah) in enumerate(laid):
        for b, bx, by, bw, bh in laid[i + 1 :]:
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                out.append(f"{a} overlaps {b}")
    for panel in graph_panels(dashboard):
        name = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("datasource") != DATASOURCE:
            out.append(f"{name}: datasource must be {DATASOURCE!r}, like Ray's panels")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            out.append(f"{name}: no unit (fieldConfig.defaults.unit)")
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            out.append(f"{name}: no targets")
            continue
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids) or not all(ref_ids):
            out.append(f"{name}: refIds must be set and unique: {ref_ids}")
        for target in targets:
            if not isinstance(target.get("expr"), str) or not target["expr"].strip():
                out.append(f"{name}: target {target.get('refId')} has no expr")
            if not target.get("legendFormat"):
                out.append(f"{name}: target {target.get('refId')} has no legendFormat")
    return out


def variable_problems(dashboard: dict[str, Any]) -> list[str]:
    """Ray's variables (datasource, SessionName, Cluster), one per exporter tag, and every
    ``$variable`` an expression uses defined."""
    out: list[str] = []
    defined = variables(dashboard)
    source = defined.get("datasource", {})
    if source.get("type") != "datasource" or source.get("query") != "prometheus":
        out.append("no Prometheus datasource variable named 'datasource'")
    for name in ("SessionName", "Cluster", *TAG_KEYS):
        if defined.get(name, {}).get("type") != "query":
            out.append(f"no query variable {name!r}")
    for variable in defined.values():
        if variable.get("type") == "query" and variable.get("datasource") != DATASOURCE:
            out.append(f"variable {variable['name']!r}: datasource must be {DATASOURCE!r}")
    texts = [t["expr"] for p in graph_panels(dashboard) for t in p.get("targets", [])]
    texts += [variable_query(v) for v in defined.values()]
    for text in texts:
        for braced, bare in VARIABLE.findall(text):
            name = braced or bare
            if not name.startswith("__") and name not in defined:
                out.append(f"undefined variable ${name} in {text}")
    return out


def query_problems(dashboard: dict[str, Any]) -> list[str]:
    """Every metric an expression (or a variable's query) names is one stakeray exports,
    under the name its kind takes; counters and histograms go through a range function;
    every selector carries Ray's filters and the exporter's tags."""
    out: list[str] = []
    filters = (*RAY_FILTERS, *(f'{key}=~"${key}"' for key in TAG_KEYS))
    exprs = [
        (f"panel {p.get('id')} {p.get('title')!r}", t.get("expr", ""))
        for p in graph_panels(dashboard)
        for t in p.get("targets", [])
    ]
    queries = [(f"variable {n!r}", variable_promql(v)) for n, v in variables(dashboard).items()]
    for where, expr in [*exprs, *queries]:
        for name in sorted(metric_names(expr)):
            if base_metric(name) is None:
                known = [n for m, s in METRICS.items() for n in prometheus_name(m, s.kind)]
                out.append(f"{where}: unknown metric {name!r} (stakeray exports {known})")
        for match in SELECTOR.finditer(STRING.sub(lambda m: "_" * len(m.group()), expr)):
            name, ranged = match.group(1), match.group(3)
            matchers = expr[match.start(2) : match.end(2)]
            if not name:
                out.append(f"{where}: a selector without a metric name: {matchers}")
                continue
            metric = base_metric(name)
            if metric is None or where.startswith("variable"):
                continue
            if (METRICS[metric].kind in RANGED_KINDS) != bool(ranged):
                rule = "needs" if METRICS[metric].kind in RANGED_KINDS else "must not have"
                out.append(f"{where}: {name} {rule} a range ([...]) for rate()/increase()")
            for wanted in filters:
                if wanted not in matchers:
                    out.append(f"{where}: {name} lacks the filter {wanted}")
        if "histogram_quantile" in expr and not re.search(r"\bby\s*\([^)]*\ble\b", expr):
            out.append(f"{where}: histogram_quantile needs the buckets kept: by (..., le)")
    return out


def coverage_problems(dashboard: dict[str, Any]) -> list[str]:
    """Every metric of METRICS is charted by at least one panel."""
    shown = {
        base_metric(name)
        for panel in graph_panels(dashboard)
        for target in panel.get("targets", [])
        for name in metric_names(target.get("expr", ""))
    }
    return [f"no panel shows {metric}" for metric in METRICS if metric not in shown]


def problems(dashboard: dict[str, Any]) -> list[str]:
    return [
        *model_problems(dashboard),
        *variable_problems(dashboard),
        *query_problems(dashboard),
        *coverage_problems(dashboard),
    ]


# --- the dashboard as it is -----------------------------------------------------------------


def test_dashboard_is_json() -> None:
    assert isinstance(load(), dict)


def test_dashboard_model() -> None:
    assert model_problems(load()) == []


def test_dashboard_variables() -> None:
    assert variable_problems(load()) == []


def test_every_expr_names_an_exported_metric() -> None:
    assert query_problems(load()) == []


def test_every_metric_is_shown() -> None:
    assert coverage_problems(load()) == []


def test_headline_panels() -> None:
    """The panels the operators asked for, with the units that make them readable."""
    panels = {p["title"]: p for p in graph_panels(load())}
    exprs = {t: " ".join(x["expr"] for x in p["targets"]) for t, p in panels.items()}
    units = {t: p["fieldConfig"]["defaults"]["unit"] for t, p in panels.items()}
    outcomes = exprs["Tasks/s by outcome"]
    for outcome in ("settled", "refunded", "failed"):
        assert f"rate(ray_stakeray_tasks_{outcome}_total" in outcomes
    latency = exprs["Settlement latency"]
    assert latency.count("histogram_quantile(") == 3 and units["Settlement latency"] == "s"
    assert units["Auction clearing margin"] == "percentunit"  # price over fee, a ratio
    assert "increase(ray_stakeray_liveness_faults_total" in exprs["Slashes and liveness faults"]


# --- the facts the checks rely on -----------------------------------------------------------


def test_exporter_registers_metrics_by_their_names_with_the_tags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RayExporter hands Ray each METRICS name as is (Ray adds the prefix), as the kind
    METRICS says, tagged with TAG_KEYS, the dashboard's variables."""
    from cluster.runtime import metrics as runtime_metrics

    made: dict[str, tuple[str, tuple[str, ...]]] = {}

    def fake(kind: str) -> Any:
        def make(name: str, description: str = "", **kwargs: Any) -> object:
            made[name] = (kind, tuple(kwargs.get("tag_keys") or ()))
            return object()

        return make

    kinds = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram"}
    fakes = SimpleNamespace(**{cls: fake(kind) for cls, kind in kinds.items()})
    monkeypatch.setattr(runtime_metrics, "metrics", fakes)
    no_thread = SimpleNamespace(start=lambda: None)  # the gauges' keep-alive thread
    monkeypatch.setattr(runtime_metrics, "threading", SimpleNamespace(Thread=lambda **_: no_thread))
    runtime_metrics.RayExporter("net", tuple(METRICS))
    assert made == {name: (m.kind, TAG_KEYS) for name, m in METRICS.items()}
    assert runtime_metrics.TAG_KEYS == TAG_KEYS


def test_rays_prefix() -> None:
    """Ray 2.60's OpenTelemetry recorder names every metric ``ray_<name>``."""
    recorder = pytest.importorskip("ray._private.telemetry.open_telemetry_metric_recorder")
    assert f"{recorder.NAMESPACE}_" == RAY_PREFIX


def test_rays_conventions() -> None:
    """The variables Ray's own default dashboard defines, defined the same way here."""
    ray_default = pytest.importorskip(
        "ray.dashboard.modules.metrics.dashboards.default_dashboard_panels"
    )
    assert tuple(ray_default.default_dashboard_config.standard_global_filters) == RAY_FILTERS
    base = Path(ray_default.__file__).parent / "default_grafana_dashboard_base.json"
    ray_vars = {v["name"]: v for v in json.loads(base.read_text())["templating"]["list"]}
    ours = variables(load())
    for key in ("type", "query"):
        assert ours["datasource"][key] == ray_vars["datasource"][key]
    for name in ("SessionName", "Cluster"):
        assert ours[name]["allValue"] == ray_vars[name]["allValue"]
        assert ours[name]["includeAll"] == ray_vars[name]["includeAll"]
    assert load()["schemaVersion"] >= json.loads(base.read_text())["schemaVersion"]


# --- the checks catch a doctored dashboard --------------------------------------------------


def doctored(edit: Any) -> list[str]:
    dashboard = copy.deepcopy(load())
    edit(dashboard)
    return problems(dashboard)


def panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = [p for p in graph_panels(dashboard) if p["title"] == title]
    return found


def rename(title: str, old: str, new: str) -> Any:
    def edit(dashboard: dict[str, Any]) -> None:
        for target in panel(dashboard, title)["targets"]:
            target["expr"] = target["expr"].replace(old, new)

    return edit


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ray_stakeray_tasks_failed_total", "ray_stakeray_tasks_exploded_total"),  # no such metric
        ("ray_stakeray_tasks_failed_total", "ray_stakeray_tasks_failed"),  # counter without _total
        ("ray_stakeray_tasks_failed_total", "stakeray_tasks_failed_total"),  # Ray's prefix lost
    ],
)
def test_an_unknown_metric_fails(old: str, new: str) -> None:
    found = doctored(rename("Tasks/s by outcome", old, new))
    assert any(f"unknown metric {new!r}" in p for p in found), found
    assert "no panel shows stakeray_tasks_failed" in found  # its only panel lost it


def test_a_gauge_with_a_counter_suffix_fails() -> None:
    found = doctored(rename("Round", "ray_stakeray_round", "ray_stakeray_round_total"))
    assert any("unknown metric 'ray_stakeray_round_total'" in p for p in found), found


def test_an_unknown_metric_in_a_variable_fails() -> None:
    def edit(dashboard: dict[str, Any]) -> None:
        query = variables(dashboard)["network"]["query"]
        query["query"] = query["query"].replace("ray_stakeray_round", "ray_stakeray_rounds")

    assert any("unknown metric 'ray_stakeray_rounds'" in p for p in doctored(edit))


def test_a_metric_no_panel_shows_fails() -> None:
    def edit(dashboard: dict[str, Any]) -> None:
        for p in graph_panels(dashboard):
            p["targets"] = [t for t in p["targets"] if "liveness" not in t["expr"]]

    assert doctored(edit) == ["no panel shows stakeray_liveness_faults"]


def test_a_missing_filter_fails() -> None:
    found = doctored(rename("Open tasks", 'network=~"$network",', ""))
    assert any('lacks the filter network=~"$network"' in p for p in found), found


def test_a_counter_read_without_rate_fails() -> None:
    def edit(dashboard: dict[str, Any]) -> None:
        target = panel(dashboard, "Tasks/s by outcome")["targets"][0]
        target["expr"] = target["expr"].replace("[$__rate_interval]", "")

    assert any("needs a range" in p for p in doctored(edit))


def test_model_faults_fail() -> None:
    def duplicate_id(dashboard: dict[str, Any]) -> None:
        panel(dashboard, "Round")["id"] = panel(dashboard, "Active stake")["id"]

    def empty_expr(dashboard: dict[str, Any]) -> None:
        panel(dashboard, "Round")["targets"][0]["expr"] = " "

    def off_grid(dashboard: dict[str, Any]) -> None:
        panel(dashboard, "Round")["gridPos"]["x"] = 20

    def no_unit(dashboard: dict[str, Any]) -> None:
        del panel(dashboard, "Round")["fieldConfig"]["defaults"]["unit"]

    assert any("duplicate panel ids" in p for p in doctored(duplicate_id))
    assert any("has no expr" in p for p in doctored(empty_expr))
    assert any("wider than" in p for p in doctored(off_grid))
    assert any("no unit" in p for p in doctored(no_unit))
