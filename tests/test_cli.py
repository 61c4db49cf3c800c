"""Bad input fails early with a clear message; interrupted or refused runs lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salmubench.cli import main
from salmubench.manifest import MANIFEST, ManifestError, read_manifest


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--profile", "huge"], ["'huge'", "micro, tiny, small, paper"]),
        (["--profile", "micro", "--set", "personas=0"], ["personas=0", "positive"]),
        (
            ["--profile", "micro", "--set", "images_per_association=-2"],
            ["images_per_association=-2", "positive"],
        ),
        (["--profile", "micro", "--set", "general_world=0"], ["general_world=0"]),
        (["--profile", "micro", "--set", "colour=3"], ["'colour'", "personas"]),
        (["--profile", "micro", "--set", "attributes=[city,shoe_size]"], ["shoe_size", "iban"]),
        (["--profile", "micro", "--set", "personas=ten"], ["personas='ten'", "integer"]),
        (["--profile", "micro", "--set", "fragile_concepts=40"], ["fragile_concepts=40"]),
    ],
)
def test_bad_config_is_refused_before_anything_is_written(tmp_path, capsys, argv, expected):
    out = tmp_path / "out"
    code, err = run_cli(capsys, "synth", *argv, "--out", str(out))
    assert code == 2
    for fragment in expected:
        assert fragment in err, err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["--seed", "-1"], ["--workers", "0"], ["--seed", "x"]])
def test_bad_numbers_are_refused_by_the_parser(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--profile", "micro", "--out", str(tmp_path / "o"), *argv])
    assert exc.value.code == 2
    assert argv[1] in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force_and_is_kept_without_it(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, err = run_cli(capsys, "synth", "--profile", "micro", "--out", str(out), "-q")
    assert code == 2 and "--force" in err and str(out) in err
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left over

    code, _ = run_cli(capsys, "synth", "--profile", "micro", "--out", str(out), "-q", "--force")
    assert code == 0
    assert not (out / "precious.txt").exists()
    read_manifest(out, kind="dataset", verify=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _spawn_synth(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "salmubench",
        "synth",
        "--profile",
        "micro",
        "-q",
        "--set",
        "general_world=60000",
        "--out",
        str(out),
        *extra,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def _kill_once_writing(proc: subprocess.Popen, parent: Path, name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tmps = list(parent.glob(f".{name}.tmp-*"))
        if tmps and list(tmps[0].glob("retain_real-*.tar")):
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.1)
    else:
        pytest.fail("synth never started writing shards")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_run_never_looks_complete(tmp_path):
    out = tmp_path / "out"
    proc = _spawn_synth(out)
    _kill_once_writing(proc, tmp_path, "out")
    assert not out.exists()
    (leftover,) = tmp_path.glob(".out.tmp-*")
    assert not (leftover / MANIFEST).exists()
    with pytest.raises(ManifestError, match="incomplete"):
        read_manifest(leftover)


def test_killed_forced_run_leaves_previous_output_intact(tmp_path, micro_dataset):
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(micro_dataset), str(out)], check=True)
    before = read_manifest(out, verify=True)
    proc = _spawn_synth(out, "--force")
    _kill_once_writing(proc, tmp_path, "out")
    assert read_manifest(out, verify=True) == before


def test_verify_names_a_corrupt_shard(tmp_path, capsys, micro_dataset):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(micro_dataset), str(copy)], check=True)
    assert run_cli(capsys, "verify", str(copy))[0] == 0
    shard = copy / "holdout_identity-000000.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    code, err = run_cli(capsys, "verify", str(copy))
    assert code == 2 and "holdout_identity-000000.tar" in err and "corrupt" in err


def test_preview_and_profiles_commands(tmp_path, capsys, micro_dataset):
    png = tmp_path / "grid.png"
    assert main(["preview", "--data", str(micro_dataset), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["profiles"]) == 0
    listed = capsys.readouterr().out
    for profile in ("micro", "tiny", "small", "paper"):
        assert profile in listed


def test_preview_refuses_an_incomplete_folder(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    code, err = run_cli(
        capsys, "preview", "--data", str(tmp_path / "half"), "--out", str(tmp_path / "p.png")
    )
    assert code == 2 and "incomplete" in err
