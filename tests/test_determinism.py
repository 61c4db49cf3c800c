"""Same seed: byte-identical shards and manifest, whatever the workers. New seed: new data."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

from salmubench.data.synth import synth
from salmubench.manifest import MANIFEST, folder_files, read_manifest


def test_same_seed_is_byte_identical_with_other_worker_count(tmp_path, micro_cfg, micro_dataset):
    again = tmp_path / "again"
    synth(micro_cfg, 0, again, profile="micro", workers=1)
    files = folder_files(micro_dataset)
    assert files == folder_files(again)
    for name in [*files, MANIFEST]:
        assert (micro_dataset / name).read_bytes() == (again / name).read_bytes(), name


def test_other_seed_gives_other_data(tmp_path, micro_cfg, micro_manifest):
    other = synth(micro_cfg, 1, tmp_path / "seed1", profile="micro", workers=2)
    assert other["digest"] != micro_manifest["digest"]
    changed = [f for f in other["files"] if other["files"][f] != micro_manifest["files"].get(f)]
    # every shard and metadata file differs, not just one
    assert set(changed) >= {f for f in other["files"] if f.endswith((".tar", ".jsonl"))}
    assert other["counts"] == micro_manifest["counts"]


def test_tar_metadata_is_fixed(micro_dataset, micro_manifest):
    for split, files in micro_manifest["shards"].items():
        for name in files:
            with tarfile.open(micro_dataset / name) as tar:
                for member in tar:
                    assert member.mtime == 0, (name, member.name)
                    assert (member.uname, member.gname, member.mode) == (
                        "salmubench",
                        "salmubench",
                        0o444,
                    )
                    # fragile samples are copies that keep their retain_disjoint keys
                    owner = "retain_disjoint" if split == "fragile" else split
                    assert member.name.startswith(f"{owner}-"), member.name


def test_dataset_does_not_depend_on_the_process_hash_seed(tmp_path):
    """Two processes with different PYTHONHASHSEED build the same bytes (all 50 locales)."""
    small = ["personas=300", "images_per_association=1", "retain_joint_per_persona=1",
             "retain_disjoint=4", "fragile_concepts=1", "fragile_images_per_concept=1",
             "general_world=10", "genknow_per_class=1"]  # fmt: skip
    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"h{hash_seed}"
        cmd = [sys.executable, "-m", "salmubench", "synth", "--profile", "micro", "-q",
               "--out", str(out), *[a for s in small for a in ("--set", s)]]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        manifest = read_manifest(out)
        assert manifest["countries"] == manifest["countries_available"]  # every locale drawn
        digests.append(manifest["digest"])
    assert digests[0] == digests[1]
