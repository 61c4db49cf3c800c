"""What every suite shares: one invocation's context (`Bench`), measuring a command in a
fresh process (`run`), interleaved rounds and paired ratios, tables, and the inputs
(dataset, Compromised model) built once and reused."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
SCRIPT = BENCHMARKS / "perf.py"  # the CLI, also what the workers run
RESULTS = BENCHMARKS / "results"
DOC = ROOT / "docs" / "BENCHMARKS.md"
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
PY = sys.executable


@dataclass
class Bench:
    """One invocation of the suite: its options, its command line, where results go, and
    the machine (probed once, by a child: this process stays small)."""

    args: argparse.Namespace
    argv: list[str]
    results: Path
    _machine: dict[str, Any] = field(default_factory=dict)

    def machine(self) -> dict[str, Any]:
        if not self._machine:
            self._machine.update(probe_machine())
        return dict(self._machine)

    def write(self, suite: str, data: dict[str, Any]) -> Path:
        result = {
            "benchmark": suite,
            "profile": self.args.profile,
            "command": "python benchmarks/perf.py " + " ".join(self.argv),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": self.machine(),
            **data,
        }
        self.results.mkdir(exist_ok=True)
        path = self.results / f"perf-{suite}-{self.args.profile}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
        return path

    def result(self, suite: str) -> dict[str, Any] | None:
        return load_result(self.results, suite, self.args.profile)


def probe_machine() -> dict[str, Any]:
    """The machine, and torch's view of it (asked of a child)."""
    probe = (
        "import json, torch; print(json.dumps({'torch': torch.__version__, "
        "'torch_threads': torch.get_num_threads(), 'gpu': torch.cuda.get_device_name(0) "
        "if torch.cuda.is_available() else None}))"
    )
    info = json.loads(
        subprocess.run([PY, "-c", probe], check=True, capture_output=True, text=True).stdout
    )
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return {
        "cpus": cpus,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        **info,
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# Started by `run` in a lean interpreter: fork()s and exec()s the command, waits for it and
# writes its peak RSS (KiB) to argv[1]. Linux carries the exec()ing process's old memory
# high-water mark into ru_maxrss, and subprocess's vfork shares the caller's memory: a
# command started directly by a process holding torch (pytest, a notebook) would report
# the caller's peak, not its own. Through this small process it reports its own.
TRAMPOLINE = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(cmd: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd` to completion: wall seconds, peak RSS (MiB) of its largest process (as
    wait4 reports it for the command's process tree), the load average before and after,
    and its stdout (stderr shown only on failure)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        before = load()
        start = time.perf_counter()
        code = subprocess.call(
            [PY, "-S", "-c", TRAMPOLINE, rss.name, *cmd], stdout=out, stderr=err, env=env, cwd=ROOT
        )
        seconds = time.perf_counter() - start
        peak_kib = int(rss.read() or 0)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}")
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "load_before": before,
        "load_after": load(),
        "stdout": stdout,
    }


def salmubench(*args: str) -> list[str]:
    return [PY, "-m", "salmubench", *args]


def worker(*args: str) -> list[str]:
    """A hidden subcommand of the suite's own CLI (cli.WORKERS), in a fresh process."""
    return [PY, str(SCRIPT), *args]


def last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 4)


def summarise(rows: list[dict], key: str) -> dict[str, Any]:
    values = [r[key] for r in rows]
    return {"median": median(values), "all": values}


def interleave(rounds: int, variants: dict[str, Callable[[], dict]]) -> dict[str, list[dict]]:
    """Run each variant once per round, in a rotating order (A B C, B C A, ...)."""
    names = list(variants)
    rows: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            row = variants[name]()
            row.pop("stdout", None)
            row["round"] = r
            rows[name].append(row)
            print(
                f"  round {r + 1}/{rounds} {name}: "
                + ", ".join(
                    f"{k} {v}" for k, v in row.items() if k not in ("round", "load_before")
                ),
                flush=True,
            )
    return rows


def paired(a: list[dict], b: list[dict], key_a: str, key_b: str | None = None) -> dict:
    """Per-round ratio a/b (same round = measured side by side), median and all."""
    values = [x[key_a] / y[key_b or key_a] for x, y in zip(a, b, strict=True)]
    return {"median": median(values), "all": [round(v, 4) for v in values]}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (also what the terminal shows)."""
    cells = [[str(c) for c in header]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"
    if isinstance(x, int):
        return f"{x:,}"
    return "" if x is None else str(x)


def ensure_dataset(args) -> Path:
    """--data, or a dataset of the profile in the work folder (built once, then reused)."""
    if args.data:
        return Path(args.data)
    from salmubench.config import stage_config, to_dict
    from salmubench.manifest import ManifestError, read_manifest

    out = Path(args.work) / "dataset"
    try:
        manifest = read_manifest(out, kind="dataset")
        if manifest["config"] == to_dict(stage_config("synth", args.profile)):
            return out
    except ManifestError:
        pass
    print(f"building the {args.profile} dataset in {out} (once) ...", flush=True)
    run(salmubench("synth", "--profile", args.profile, "--out", str(out), "--force", "-q"))
    return out


def ensure_model(args, data: Path) -> Path:
    """--model; else the e2e run's Compromised model (the profile's full recipe) if there
    is one; else a Compromised model trained for --model-steps steps (recorded)."""
    if args.model:
        return Path(args.model)
    from salmubench.manifest import ManifestError, read_manifest

    for candidate in (Path(args.work) / "e2e" / "compromised", Path(args.work) / "compromised"):
        try:
            manifest = read_manifest(candidate, kind="model")
        except ManifestError:
            continue
        if manifest["inputs"]["dataset"] == read_manifest(data, kind="dataset")["digest"]:
            return candidate
    out = Path(args.work) / "compromised"
    steps = args.model_steps
    print(f"training a {steps}-step Compromised model in {out} (once) ...", flush=True)
    run(
        salmubench(
            "train",
            "--data",
            str(data),
            "--variant",
            "compromised",
            "--profile",
            args.profile,
            "--out",
            str(out),
            "--force",
            "-q",
            "--set",
            f"steps={steps}",
            "--set",
            f"checkpoint_every={steps}",
            "--set",
            f"warmup_steps={min(steps - 1, 50)}",
        )
    )
    return out


def model_info(path: Path) -> dict[str, Any]:
    from salmubench.manifest import read_manifest

    m = read_manifest(path, kind="model")
    return {
        "path": str(path),
        "architecture": m["architecture"],
        "steps": m["steps"],
        "variant": m["variant"],
    }


def load_result(results: Path, suite: str, profile: str) -> dict[str, Any] | None:
    path = results / f"perf-{suite}-{profile}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def max_load(r: dict[str, Any]) -> float:
    """The highest 1-minute load average seen before or after any run of a result."""
    runs = [row for rows in r.get("runs", {}).values() for row in rows] or [r.get("run", {})]
    return max(
        [row[k][0] for row in runs for k in ("load_before", "load_after") if k in row] or [0.0]
    )


def _header(r: dict[str, Any]) -> str:
    m = r["machine"]
    runs = [row for rows in r.get("runs", {}).values() for row in rows] or [r.get("run", {})]
    loads = [row["load_before"][0] for row in runs if "load_before" in row]
    load_text = (
        f"1-min load average {min(loads):.2f}–{max(loads):.2f} during the runs" if loads else ""
    )
    return (
        f"`{r['command']}` — {r['date']}, {m['cpus']} CPUs ({m['processor']}), "
        f"{'GPU ' + m['gpu'] if m['gpu'] else 'no GPU'}, Python {m['python']}, torch "
        f"{m['torch']}; median of {r.get('repeat', 1)}; {load_text}; "
        f"JSON: `benchmarks/results/perf-{r['benchmark']}-{r['profile']}.json`"
    )
