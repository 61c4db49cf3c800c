"""Same seed: byte-identical shards and manifest, whatever the workers. New seed: new data."""

from __future__ import annotations

import tarfile

from salmubench.data.synth import synth
from salmubench.manifest import MANIFEST, folder_files


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
