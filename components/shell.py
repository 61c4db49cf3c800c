"""What every component body does: run one `salmubench <stage>` command in-process.

Component bodies stay one call long; this module holds the common steps: the params file,
the Pushgateway and run id for telemetry, a visible start/end line with the elapsed time,
and turning a non-zero exit status into an exception (KFP marks the task failed).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)


def params_file(params_yaml: str) -> str | None:
    """Write a params.yaml text to a temporary file; its path, or None for the default.

    Pipelines pass params.yaml as TEXT because a wheel-installed package has no source
    tree to find it in, and because the text then shows in the run's parameters and in
    the cache key: change a hyper-parameter and the affected tasks re-run.
    """
    if not params_yaml.strip():
        return None
    fd, path = tempfile.mkstemp(prefix="salmubench-params-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(params_yaml)
    return path


def method_file(method_py: str) -> str | None:
    """Write a method file's TEXT (a pipeline parameter) to a .py file named by its sha256;
    its path, or None when empty. Content-addressed, so the origin recorded in manifests
    (`file <path>`) is the same in every task and run of the same code."""
    if not method_py.strip():
        return None
    import hashlib

    data = method_py.encode("utf-8")
    path = os.path.join(
        tempfile.gettempdir(), f"salmubench-method-{hashlib.sha256(data).hexdigest()[:16]}.py"
    )
    fd, tmp = tempfile.mkstemp(prefix=".salmubench-method-", suffix=".py")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # atomic: tasks sharing a node never read half a file
    return path


def telemetry_env(pushgateway: str = "") -> None:
    """Let the stage's telemetry hook (in `salmubench.cli.main`) push where configured."""
    if pushgateway:
        os.environ["SALMUBENCH_PUSHGATEWAY"] = pushgateway


def run_stage(
    args: Sequence[str],
    *,
    overrides: Sequence[str] = (),
    params_yaml: str = "",
    pushgateway: str = "",
    method_py: str = "",
) -> None:
    """`salmubench <args> [--params F] [--method-file M] [--set K=V ...]`; RuntimeError on
    a non-zero status. `method_py`: the text of a method file (stages that take one)."""
    from salmubench.cli import main

    telemetry_env(pushgateway)
    argv = list(args)
    path = params_file(params_yaml)
    if path:
        argv += ["--params", path]
    method = method_file(method_py)
    if method:
        argv += ["--method-file", method]
    for item in overrides:
        argv += ["--set", item]
    stage = argv[0]
    print(f"[salmubench] {stage} started: salmubench {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse rejects bad arguments by exiting
        code = e.code if isinstance(e.code, int) else 2
    except BaseException:
        _report_failure(argv, pushgateway)
        raise
    finally:
        if path:
            os.unlink(path)
    seconds = time.perf_counter() - start
    if code != 0:
        _report_failure(argv, pushgateway)
        raise RuntimeError(
            f"salmubench {stage} failed with exit status {code} after {seconds:.1f} s"
        )
    print(f"[salmubench] {stage} finished in {seconds:.1f} s", flush=True)


def _report_failure(argv: Sequence[str], pushgateway: str) -> None:
    """A monitored re-evaluation (an eval with a baseline store) that failed: push the
    failure for the leakage alerts (docs/MONITORING.md); warns, never raises."""
    from salmubench import monitor

    if argv[0] == "eval" and pushgateway and monitor.baselines() and "--model" in argv:
        monitor.report_failure_quietly(argv[argv.index("--model") + 1], pushgateway)


def fetch_folder(uri: str, out: str) -> dict:
    """A stage folder named by URI into `out`, verified against its manifest; or a
    checkpoint file (an external model, e.g. the released ViT-B/16: docs/OFFICIAL.md) to
    the file `out`, recorded by its sha256.

    `s3://...`: `salmubench download` (the storage module; endpoint and credentials from
    the environment), or the object itself when one is stored at exactly that key. A local
    path (the local runner, a mounted volume): a verified copy.
    Read afresh on every call, so a scheduled re-evaluation sees the checkpoint as it is now.
    Returns the folder's manifest, or `{"digest": "sha256:<hex>", "file": name}`.
    """
    import shutil
    from pathlib import Path

    from salmubench.hashing import sha256_file
    from salmubench.manifest import is_url, read_manifest

    if uri.endswith(".safetensors"):
        # OpenCLIP picks the safetensors reader by the file's suffix, and a task's output
        # artifact has a fixed name without one: the copy would be read as a torch file.
        raise ValueError(
            f"{uri}: a .safetensors checkpoint cannot be fetched into a task's artifact "
            "(its reader is chosen by the suffix); give a .pt/.bin copy of the state dict"
        )
    if is_url(uri):
        from salmubench.s3 import Store

        store = Store()
        if store.stat(uri) is not None:  # an object at that very key: a checkpoint file
            digest = store.get_file(uri, out)
            return {"digest": f"sha256:{digest}", "file": uri.rsplit("/", 1)[-1]}
        run_stage(["download", uri, out, "--force"])
    elif Path(uri).is_file():
        shutil.copyfile(uri, out)
        return {"digest": f"sha256:{sha256_file(out)}", "file": Path(uri).name}
    else:
        read_manifest(uri, verify=True)  # never copy an incomplete or altered folder
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(uri, out)
    return read_manifest(out, verify=True)


def bundle_folders(folders: list[tuple[str, str]], out: str) -> None:
    """Copy stage folders into one folder `out` as `out/<name>`, each verified first.

    What a world's chain hands to the tasks after the loop over worlds: KFP fans in one
    level of ParallelFor at a time, so a world's evaluations (and, to publish, its dataset
    and models) travel as one artifact; `salmubench report` and `publish` find the stage
    folders inside.
    """
    import shutil
    from pathlib import Path

    from salmubench.manifest import read_manifest

    root = Path(out)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name, folder in folders:
        read_manifest(folder, verify=True)
        shutil.copytree(folder, root / name)


def run_key(method: str, seed: int) -> str:
    """The name of one unlearning run's model in a world's bundle (`world_models`)."""
    return f"{method}-s{int(seed)}"


def attack_target(model: str, method: str = "", seed: int = 0) -> str:
    """The model folder an `attack` task attacks: `model` itself, or with `method` the
    `<method>-s<seed>` model of the world's bundle `model`; a missing one is named with
    those the bundle holds."""
    from pathlib import Path

    if not method:
        return model
    target = Path(model) / run_key(method, seed)
    if not target.is_dir():
        held = sorted(p.name for p in Path(model).iterdir()) if Path(model).is_dir() else []
        raise ValueError(f"no model {target.name!r} in {model}; it holds {held}")
    return str(target)
