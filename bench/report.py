"""`make bench`: run every benchmark in bench/ and print one Markdown table of the headline figures.

The scripts run one after another, each in its own process (two at once would measure each other),
in their short mode where they have one (`--quick`). A script that takes `--json PATH` hands its
headline figures over that way (bench/results.py); for the others the summary lines of their output
are taken (SUMMARY below), else their last line. A script that exits non-zero is marked FAILED and
makes the report exit 1 once the table is printed. The table ends with the date, the machine and
the exact commands, so a figure can be reproduced one script at a time.

    python bench/report.py [--out PATH] [--only SCRIPT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# In this order: the server's own figures first. A script missing here still runs (after these).
RUNS: list[tuple[str, list[str]]] = [
    ("sms_throughput.py", []),
    ("sms_throughput.py", ["--store", "postgres"]),
    ("page_latency.py", []),
    ("load.py", ["--quick"]),
    ("load.py", ["--quick", "--store", "postgres"]),
    ("metrics_scrape.py", []),
    ("dashboard_scale.py", []),
    ("phrasings.py", []),
    ("webhook_batch.py", []),
    ("outbox_drain.py", []),
    ("status_fanout.py", []),
]
NOT_BENCHMARKS = {"report.py", "results.py", "bare_app.py"}
# The summary lines of scripts without --json: "<figure>: <value>".
SUMMARY = {
    "page_latency.py": r"^(webhook accepted|rule evaluation|rule breach|p99 target)",
    "metrics_scrape.py": r"^(scrape, |30 /sms)",
    "webhook_batch.py": r"^webhook_batch \[",
    "outbox_drain.py": r"^(outbox drain|paced drain)",
    "status_fanout.py": r"^(status fan-out|ratio)",
}


def runs(only: list[str]) -> list[tuple[str, list[str]]]:
    present = {p.name for p in HERE.glob("*.py")} - NOT_BENCHMARKS
    planned = [(s, a) for s, a in RUNS if s in present]
    planned += [(s, []) for s in sorted(present - {s for s, _ in RUNS})]
    return [(s, a) for s, a in planned if not only or s in only]


def command(script: str, args: list[str]) -> list[str]:
    """The command as a reader would type it from the repository root (quick mode included)."""
    source = (HERE / script).read_text()
    if '"--quick"' in source and "--quick" not in args:
        args = ["--quick", *args]
    return [".venv/bin/python", f"bench/{script}", *args]


def run(cmd: list[str], json_path: Path) -> tuple[int, str, float]:
    """Run one benchmark, echoing its output to stderr; (exit status, output, seconds)."""
    source = (REPO / cmd[1]).read_text()
    extra = ["--json", str(json_path)] if "results.add_option" in source else []
    print(f"\n$ {shlex.join(cmd)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, *cmd[1:], *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stderr.write(line)
        lines.append(line)
    return proc.wait(), "".join(lines), time.monotonic() - started


def figures(script: str, output: str, json_path: Path) -> tuple[str | None, list[tuple[str, str, str]]]:
    """(benchmark name if the script gave one, rows of figure, value, target)."""
    if json_path.exists():
        data = json.loads(json_path.read_text())
        return data["benchmark"], [(f["figure"], f["value"], f["target"]) for f in data["figures"]]
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    pattern = SUMMARY.get(script)
    chosen = [line for line in lines if pattern and re.search(pattern, line)] or lines[-1:]
    rows = []
    for line in chosen:
        what, sep, value = line.partition(": ")
        what = what.removeprefix(script.removesuffix(".py")).strip()
        rows.append((what, value.strip(), "") if sep else ("", line, ""))
    return None, rows


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = f" ({found.group(1)})" if found else ""
    memory = psutil.virtual_memory().total / (1 << 30)
    return f"{os.cpu_count()} CPUs{model}, {memory:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--only", nargs="*", default=[], metavar="SCRIPT", help="e.g. load.py phrasings.py")
    args = parser.parse_args()
    started = datetime.now(UTC)
    table = ["| benchmark | figure | value | target |", "|---|---|---|---|"]
    commands, failed = [], []
    with tempfile.TemporaryDirectory(prefix="operator-report-") as tmp:
        for i, (script, script_args) in enumerate(runs(args.only)):
            cmd = command(script, script_args)
            json_path = Path(tmp) / f"{i}.json"
            status, output, seconds = run(cmd, json_path)
            name, rows = figures(script, output, json_path)
            name = name or " ".join([script.removesuffix(".py"), *script_args]).replace(" --quick", "")
            if status:
                failed.append(name)
                rows.append(("FAILED: exit status", str(status), "0"))
            for what, value, target in rows:
                table.append(f"| {cell(name)} | {cell(what)} | {cell(value)} | {cell(target)} |")
            commands.append(f"{shlex.join(cmd)}  # {seconds:.0f} s")
    text = "\n".join(
        [
            *table,
            "",
            f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}; the machine was shared with other work, "
            "so throughput and latency figures are a floor, not a ceiling. Reproduce with `make bench`, "
            "or one at a time:",
            "",
            "```",
            *commands,
            "```",
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
