"""Pin the dataset the DVC pipeline uses: `data/` synthesised, tracked by `data.dvc`.

    python tools/pin_data.py           # synthesise data/ (params.yaml: run.profile, run.seed),
                                       # `dvc add data`, record how in data.dvc's meta
    python tools/pin_data.py --check   # synthesise into a temp folder: same digest as pinned?

Synthesis is byte-deterministic (fixed tar metadata, no fonts, no clocks), so the pin is
both a DVC object (`dvc pull data`) and a recipe (`salmubench synth` with the pinned
profile and seed): either gives exactly the bytes whose md5 data.dvc records. dvc.yaml's
stages read `data/` and never write it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PIN = "data.dvc"
HEADER = """\
# The dataset version dvc.yaml's stages read (data/), pinned by tools/pin_data.py.
# Synthesis is byte-deterministic: `dvc pull data`, or the command in meta, gives exactly
# these bytes (meta.digest: the manifest digest that `salmubench verify data` checks).
"""


def synth_command(profile: str, seed: int, out: str) -> list[str]:
    return ["salmubench", "synth", "--profile", profile, "--seed", str(seed), "--out", out,
            "--force", "-q"]  # fmt: skip


def _runnable(cmd: list[str]) -> list[str]:
    """`salmubench ...` with this interpreter (the venv's, whatever PATH says)."""
    return [sys.executable, "-m", "salmubench", *cmd[1:]]


def run_params(repo: Path) -> tuple[str, int]:
    run = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))["run"]
    return str(run["profile"]), int(run["seed"])


def _run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _digest(folder: Path) -> str:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["digest"]


def pin(repo: Path) -> dict:
    """Synthesise repo/data, track it with DVC, write the recipe into data.dvc's meta."""
    profile, seed = run_params(repo)
    _run(_runnable(synth_command(profile, seed, "data")), repo)
    _run([sys.executable, "-m", "dvc", "add", "-q", "data"], repo)
    spec = yaml.safe_load((repo / PIN).read_text(encoding="utf-8"))
    spec["meta"] = {
        "profile": profile,
        "seed": seed,
        "digest": _digest(repo / "data"),
        "command": shlex.join(synth_command(profile, seed, "data")),
    }
    (repo / PIN).write_text(HEADER + yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return spec


def check(repo: Path) -> list[str]:
    """What disagrees between data.dvc and a fresh synthesis of its recipe (empty: none)."""
    spec = yaml.safe_load((repo / PIN).read_text(encoding="utf-8"))
    meta = spec.get("meta") or {}
    problems = []
    if (meta.get("profile"), meta.get("seed")) != run_params(repo):
        problems.append(f"{PIN} pins {meta.get('profile')}/{meta.get('seed')}, params.yaml "
                        f"runs {'/'.join(map(str, run_params(repo)))}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "data"
        _run(_runnable(synth_command(meta["profile"], int(meta["seed"]), str(out))), repo)
        if _digest(out) != meta.get("digest"):
            problems.append(f"synthesis gives {_digest(out)[:12]}, {PIN} pins "
                            f"{str(meta.get('digest'))[:12]}: re-pin (code changed?)")  # fmt: skip
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="re-synthesise and compare only")
    parser.add_argument("--repo", type=Path, default=REPO, help="the project root")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.repo)
        print("\n".join(problems) or f"{PIN}: a fresh synthesis gives the pinned dataset")
        return 1 if problems else 0
    spec = pin(args.repo)
    print(f"{PIN}: {spec['meta']['profile']} seed {spec['meta']['seed']}, digest "
          f"{spec['meta']['digest'][:12]}; `dvc push data.dvc` to store it")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
