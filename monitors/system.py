"""The host Operator runs on: CPU, memory, disk and load via psutil, no configuration needed."""

from __future__ import annotations

import os

import psutil

from monitors.base_monitor import BaseMonitor, MonitorError

# Above these the status line says "WARN" so a glance at `status` finds the problem.
WARN_PERCENT = 90.0


class SystemMonitor(BaseMonitor):
    name = "sys"
    description = "this host's CPU, memory, disk and load"

    def __init__(self, timeout: float = 4.0, disk_path: str = "/"):
        super().__init__(timeout)
        self.disk_path = disk_path

    def readings(self) -> dict[str, float]:
        return {
            "cpu": psutil.cpu_percent(interval=0.2),
            "memory": psutil.virtual_memory().percent,
            "disk": psutil.disk_usage(self.disk_path).percent,
            "load": os.getloadavg()[0],
        }

    def _check(self) -> str:
        r = self.readings()
        hot = [k for k in ("cpu", "memory", "disk") if r[k] >= WARN_PERCENT]
        head = f"WARN {','.join(hot)}" if hot else "ok"
        return f"{head} cpu {r['cpu']:.0f}% mem {r['memory']:.0f}% disk {r['disk']:.0f}% load {r['load']:.2f}"

    def _query(self, what: str, args: list[str]) -> str:
        r = self.readings()
        key = {"mem": "memory", "ram": "memory"}.get(what, what)
        if key not in r:
            raise MonitorError(f"sys knows {', '.join(r)}", permanent=True)
        unit = "" if key == "load" else "%"
        return f"sys {key} {r[key]:.2f}{unit}" if key == "load" else f"sys {key} {r[key]:.0f}{unit}"

    def _value(self, query: str) -> float | None:
        key = {"mem": "memory", "ram": "memory"}.get(query, query)
        r = self.readings()
        if key not in r:
            raise MonitorError(f"sys knows {', '.join(r)}", permanent=True)
        return r[key]
