"""Where time goes: each stage's wall time, CPU time and peak RSS, one JSON line per run.

`StageTimer` measures one stage run and appends it to `.transferlab/timings.jsonl` (git- and DVC-ignored) in the
working directory, which is the project root when DVC runs the stage. Records are appended with one `write` on a
file opened in append mode, so stages running at once do not interleave lines; a line that does not parse (a run
killed mid-write, a hand edit) is skipped and counted when reading. Recording is an observer: it never makes a
stage fail (a warning on stderr instead). `TRANSFERLAB_TIMINGS=off` turns it off (the unit tests do).

Fields: `stage`, `started`/`ended` (UTC ISO), `wall_s` (for a stage run from the command line: the whole process,
interpreter start and imports included, where /proc tells when the process started), `startup_s` (the part of
`wall_s` before the stage's own code ran), `cpu_s` (user + system CPU of the process and of its children that
finished, e.g. the sweeps' worker processes), `peak_rss_mib` (the largest resident set of the process or of any one
finished child; not the sum of workers alive at once), `status` (ok | failed), `pid`, `commit` (git HEAD, when a git
checkout is there).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

TIMINGS_FILE = Path(".transferlab") / "timings.jsonl"
FIELDS = ("stage", "started", "ended", "wall_s", "startup_s", "cpu_s", "peak_rss_mib", "status")


def enabled() -> bool:
    return os.environ.get("TRANSFERLAB_TIMINGS", "on").lower() not in ("off", "0", "false")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished (waited-for) children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mib() -> float:
    """The peak resident set of this process or of its largest finished child, in MiB (ru_maxrss is KiB on
    Linux, bytes on macOS)."""
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc), or None where that cannot be read."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime, in clock ticks after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return age if age >= 0 else None


def git_commit(root: Path) -> str | None:
    """HEAD of the git checkout at root, or None (no git, no checkout, anything odd)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


class StageTimer:
    """Measure one stage run from construction to `record`. With `whole_process` (a stage started from the command
    line) the wall time starts when the process did, so interpreter start and imports count."""

    def __init__(self, stage: str, whole_process: bool = True):
        self.stage, self.whole_process = stage, whole_process
        self.started = _now()
        self._t0 = time.perf_counter()
        self._cpu0 = 0.0 if whole_process else cpu_seconds()
        self._age0 = process_age() if whole_process else None

    def measure(self, status: str) -> dict:
        run_s = time.perf_counter() - self._t0
        startup_s = self._age0 if self._age0 is not None else 0.0
        started = self.started - dt.timedelta(seconds=startup_s)
        return {"stage": self.stage, "started": started.isoformat(timespec="milliseconds"),
                "ended": _now().isoformat(timespec="milliseconds"), "wall_s": round(startup_s + run_s, 3),
                "startup_s": round(startup_s, 3), "cpu_s": round(max(cpu_seconds() - self._cpu0, 0.0), 3),
                "peak_rss_mib": round(peak_rss_mib(), 1), "status": status, "pid": os.getpid()}

    def record(self, status: str, path: str | Path = TIMINGS_FILE) -> dict | None:
        """Measure and append; never raises (a failure to record is a warning on stderr)."""
        if not enabled():
            return None
        try:
            record = self.measure(status)  # before running git, so its child process is not counted
            record["commit"] = git_commit(Path.cwd())
            append_record(record, path)
            return record
        except Exception as err:  # noqa: BLE001 - timing is an observer, never the reason a stage fails
            print(f"warning: stage timing not recorded in {path}: {err}", file=sys.stderr)
            return None


def append_record(record: dict, path: str | Path = TIMINGS_FILE) -> None:
    """Append one JSON line with a single write on an O_APPEND descriptor (concurrent writers do not interleave)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(", ", ": ")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_timings(path: str | Path = TIMINGS_FILE) -> tuple[list[dict], int]:
    """The records in file order and how many lines were skipped (not JSON, or lacking a field)."""
    records, skipped = [], 0
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if not isinstance(record, dict) or any(k not in record for k in ("stage", "started", "wall_s")):
            skipped += 1
            continue
        records.append(record)
    return records, skipped


def last_runs(records: list[dict]) -> list[dict]:
    """The last run of each stage (the latest start), in the order those runs started."""
    last: dict[str, dict] = {}
    for r in records:
        if r["stage"] not in last or str(r["started"]) >= str(last[r["stage"]]["started"]):
            last[r["stage"]] = r
    return sorted(last.values(), key=lambda r: str(r["started"]))


def total(rows: list[dict]) -> dict:
    """Sum of wall, startup and CPU seconds; the largest peak RSS; how many runs failed."""
    def add(key):
        return round(sum(float(r.get(key) or 0.0) for r in rows), 3)

    return {"stages": len(rows), "wall_s": add("wall_s"), "startup_s": add("startup_s"), "cpu_s": add("cpu_s"),
            "peak_rss_mib": max((float(r.get("peak_rss_mib") or 0.0) for r in rows), default=0.0),
            "failed": sum(r.get("status") != "ok" for r in rows)}


def _cell(value, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def table_rows(rows: list[dict]) -> list[list[str]]:
    """Stage, wall s, startup s, CPU s, peak RSS MiB, status, started (UTC, to the second) for each row."""
    return [[str(r["stage"]), _cell(r.get("wall_s"), "{:.1f}"), _cell(r.get("startup_s"), "{:.1f}"),
             _cell(r.get("cpu_s"), "{:.1f}"), _cell(r.get("peak_rss_mib"), "{:.0f}"), str(r.get("status", "")),
             str(r.get("started", ""))[:19].replace("T", " ")] for r in rows]


HEADER = ["stage", "wall s", "startup s", "CPU s", "peak RSS MiB", "status", "started (UTC)"]


def total_row(rows: list[dict]) -> list[str]:
    t = total(rows)
    status = "ok" if not t["failed"] else f"{t['failed']} failed"
    return [f"total ({t['stages']} stages)", f"{t['wall_s']:.1f}", f"{t['startup_s']:.1f}", f"{t['cpu_s']:.1f}",
            f"{t['peak_rss_mib']:.0f} (max)", status, ""]


def markdown_table(rows: list[dict]) -> str:
    """The last runs as a Markdown table with a total row (wall and CPU summed, RSS the max)."""
    right = {1, 2, 3, 4}
    lines = ["| " + " | ".join(HEADER) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(HEADER))) + "|"]
    for cells in table_rows(rows):
        lines.append("| " + " | ".join(cells) + " |")
    cells = total_row(rows)
    lines.append("| " + " | ".join(f"**{c}**" if c else "" for c in cells) + " |")
    return "\n".join(lines) + "\n"
