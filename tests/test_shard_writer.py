"""Our tar writer (`shards.TarShard`, `SplitWriter`) writes the bytes WebDataset's
ShardWriter writes, so datasets keep their digests, and it refuses what would need a
different tar header rather than writing something else."""

from __future__ import annotations

import tarfile

import pytest
import webdataset as wds

from salmubench.data.shards import SplitWriter, tar_header


# Sizes around the 512-byte block (0, 1, 511, 512, 513, ...); str values are UTF-8 encoded.
def sample(i: int, n: int) -> dict[str, bytes | str]:
    extra = {"cls": str(i)} if i % 2 else {}
    return {"png": bytes(range(256)) * n, "txt": f"a caption ü {i}", "json": b"{}", **extra}


SAMPLES = [(f"retain_real-{i:06d}", sample(i, n)) for i, n in enumerate((0, 1, 2, 3, 4, 7, 40))]
SAMPLES += [("retain_real-000007", {"png": b"x" * 511, "txt": b"y" * 513, "json": b""})]


def reference_shards(folder, split, shard_size, samples) -> dict[str, bytes]:
    """What the dataset used to be written with: webdataset's ShardWriter, our settings."""
    writer = wds.ShardWriter(
        str(folder / f"{split}-%06d.tar"),
        maxcount=shard_size,
        mtime=0,
        user="salmubench",
        group="salmubench",
        encoder=False,
        verbose=0,
    )
    for key, values in samples:
        raw = {k: v.encode() if isinstance(v, str) else v for k, v in values.items()}
        writer.write({"__key__": key, **raw})
    writer.close()
    return {p.name: p.read_bytes() for p in sorted(folder.glob(f"{split}-*.tar"))}


@pytest.mark.parametrize("shard_size, count", [(3, len(SAMPLES)), (100, len(SAMPLES)), (3, 0)])
def test_split_writer_matches_webdataset_byte_for_byte(tmp_path, shard_size, count):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    writer = SplitWriter(ours, "retain_real", shard_size)
    for key, values in SAMPLES[:count]:
        writer.write(key, values)
    names = writer.close()
    expected = reference_shards(theirs, "retain_real", shard_size, SAMPLES[:count])
    assert names == sorted(expected)  # an empty split still has one (empty) shard
    assert len(names) == max(1, -(-count // shard_size))
    for name in names:
        assert (ours / name).read_bytes() == expected[name], name
    with tarfile.open(ours / names[0]) as tar:  # and the standard library reads it back
        members = tar.getmembers()
    assert [m.name for m in members][:4] == (
        ["retain_real-000000.json", "retain_real-000000.png", "retain_real-000000.txt",
         "retain_real-000001.cls"] if count else []
    )  # fmt: skip


def test_names_a_plain_header_cannot_hold_are_refused():
    with pytest.raises(ValueError, match="ASCII and at most 100 bytes"):
        tar_header("x" * 97 + ".png", 1)
    with pytest.raises(ValueError, match="ASCII"):
        tar_header("persönlich-000000.png", 1)
    assert len(tar_header("x" * 96 + ".png", 1)) == 512


def test_shard_size_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="shard_size=0: must be at least 1"):
        SplitWriter(tmp_path, "genknow", 0)
