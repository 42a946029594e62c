"""The deployment files: alert rules (checked without promtool), systemd units, backup script.

- ``deploy/prometheus/faceledger-alerts.yml``: every rule has a name, an expression, a
  ``for`` duration, a severity and a summary; brackets balance; every function is PromQL's;
  every metric is one FaceLedger exports (read from a real app's registry with a real gateway
  behind it), one Prometheus makes (``up``) or the backup script writes; every label matcher
  names a label that metric has.
- ``deploy/faceledger.service``: runs ``faceledger serve`` as its own user with umask 0077,
  the key outside the data folder, and a stop timeout longer than the shutdown grace.
- ``deploy/faceledger-backup.sh``: two runs with ``KEEP=1`` leave one complete backup and the
  textfile metric the alert reads.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import yaml
from fastapi import FastAPI

from faceledger.api.metrics import Metrics
from faceledger.audit import Ledger
from faceledger.config import Settings
from faceledger.services.gateway import Gateway

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "faceledger-alerts.yml"

PROMQL_FUNCTIONS = {
    "rate", "irate", "increase", "sum", "avg", "max", "min", "count", "histogram_quantile",
    "time", "abs", "absent", "delta", "deriv", "clamp_min", "clamp_max", "topk", "bottomk",
    "max_over_time", "min_over_time", "avg_over_time", "vector", "scalar",
}  # fmt: skip
PROMQL_KEYWORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "bool", "offset"}
OTHER_METRICS = {
    "up": {"job", "instance"},  # made by Prometheus for every target
    "faceledger_backup_last_success_timestamp_seconds": set(),  # deploy/faceledger-backup.sh
}
TARGET_LABELS = {"job", "instance"}  # Prometheus adds these to every series


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Metric name → its label names, from a real app's registry (gateway, limiter in place)."""
    tmp = tmp_path_factory.mktemp("metrics")
    app = FastAPI()
    metrics = Metrics(app)
    gate = Gateway(Settings(data_dir=tmp / "data", ledger_key_file=tmp / "keys" / "k"))
    app.state.gateway = gate
    app.state.engine_limiter = anyio.CapacityLimiter(1)
    metrics.requests.labels("x", "ok").inc()
    metrics.latency.labels("x").observe(0.1)
    metrics.observe_stage("detect", 0.01, None)
    metrics.observe_stage("search", 0.01, 5)
    names: dict[str, set[str]] = {}
    try:
        for family in metrics.registry.collect():
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
            # a family without samples yet (no stream processor) still declares its labels
            names.setdefault(family.name, set()).update(getattr(family, "_labelnames", ()))
    finally:
        gate.close()
    return names


def _rules() -> list[dict[str, object]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _check_expr(expr: str, known: dict[str, set[str]]) -> None:
    depth = {"(": 0, "[": 0, "{": 0}
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:\\.|[^"\\])*"', '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in pairs:
            depth[pairs[char]] -= 1
            assert depth[pairs[char]] >= 0, f"unbalanced {char!r} in {expr}"
    assert all(v == 0 for v in depth.values()), f"unbalanced brackets in {expr}"
    # selectors: name{label="v", …}
    for name, matchers in re.findall(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr):
        assert name in known, f"unknown metric {name} in {expr}"
        for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers):
            assert label in known[name] | TARGET_LABELS, f"{name} has no label {label!r}"
    bare = re.sub(r'"(?:\\.|[^"\\])*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    for match in re.finditer(r"[a-zA-Z_:][\w:]*", bare):
        word = match.group(0)
        following = bare[match.end() :].lstrip()[:1]
        if re.fullmatch(r"\d*e\d+", word) or word in PROMQL_KEYWORDS:
            continue
        if following == "(":
            assert word in PROMQL_FUNCTIONS, f"unknown function {word} in {expr}"
        else:
            assert word in known, f"unknown metric {word} in {expr}"


def test_alert_rules_parse_and_name_real_metrics(exported: dict[str, set[str]]) -> None:
    known = {**exported, **OTHER_METRICS}
    rules = _rules()
    assert len(rules) >= 8
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"FaceLedger[A-Za-z]+", str(rule["alert"]))
        assert re.fullmatch(r"\d+[smhd]", str(rule["for"]))
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in ("critical", "warning", "info")
        assert isinstance(annotations, dict) and annotations["summary"]
        _check_expr(str(rule["expr"]), known)
    # the checker itself catches mistakes
    with pytest.raises(AssertionError):
        _check_expr("faceledger_no_such_metric > 1", known)
    with pytest.raises(AssertionError):
        _check_expr('faceledger_ledger_ok{collection="x"} == 0', known)
    with pytest.raises(AssertionError):
        _check_expr("rate(faceledger_requests_total[5m]", known)


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "faceledger.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("faceledger serve")
    assert service["User"] == "faceledger" and service["UMask"] == "0077"
    assert service["KillSignal"] == "SIGTERM"
    env = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "faceledger.service").read_text().splitlines()
        for line in [line.removeprefix("Environment=")]
        if line.startswith("FACELEDGER_")
    )
    data, key = Path(env["FACELEDGER_DATA_DIR"]), Path(env["FACELEDGER_LEDGER_KEY_FILE"])
    assert not key.is_relative_to(data)
    assert int(service["TimeoutStopSec"]) > int(env["FACELEDGER_SHUTDOWN_GRACE_SECONDS"])
    Settings(data_dir=data, ledger_key_file=key, log_format=env["FACELEDGER_LOG_FORMAT"])


def test_backup_script_rotates_and_writes_the_textfile(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", ledger_key_file=tmp_path / "keys" / "k")
    with Ledger.from_settings(settings) as ledger:
        ledger.checkpoint()
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        FACELEDGER_DATA_DIR=str(settings.data_dir),
        FACELEDGER_LEDGER_KEY_FILE=str(settings.ledger_key_file),
        FACELEDGER_BACKUP_DIR=str(tmp_path / "backups"),
        FACELEDGER_BACKUP_KEEP="1",
        FACELEDGER_TEXTFILE_DIR=str(textfile),
    )
    script = str(ROOT / "deploy" / "faceledger-backup.sh")
    for _ in range(2):
        done = subprocess.run([script], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        (tmp_path / "backups" / "20000101T000000Z").mkdir()  # an interrupted, older backup
    kept = sorted(p.name for p in (tmp_path / "backups").iterdir() if not p.name.startswith("."))
    assert len(kept) == 2 and kept[0] == "20000101T000000Z"  # the last run's leftover stays
    assert (tmp_path / "backups" / kept[1] / "manifest.json").is_file()
    prom = (textfile / "faceledger_backup.prom").read_text()
    assert re.search(r"^faceledger_backup_last_success_timestamp_seconds \d+$", prom, re.M)
    assert re.search(r"^faceledger_backup_size_bytes [1-9]\d*$", prom, re.M)
