"""The released SALMUBench data and checkpoints (issue #19): `salmubench import --official`,
OpenCLIP preprocessing for external checkpoints, --device, GenKnow from an ImageNet folder,
and `bench` on an imported dataset with checkpoint files.

The fixture is a small release written here in the release's layout (metadata JSONs, the
four released splits with identity_id/file_name/text rows, PIL-written images of odd sizes
so that resize + centre crop differs from a squash); once unpacked (data/<split>/
metadata.jsonl, as Hugging Face's imagefolder), once as parquet shards like the release.
`write_release` and `image_bytes` are reused by tests/test_kfp_official.py (the pipelines).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from salmubench.cli import main
from salmubench.config import stage_config
from salmubench.data.official import OfficialDataError, import_official
from salmubench.data.shards import iter_split
from salmubench.manifest import read_manifest
from salmubench.models import Preprocess, create, load_model, preprocessing

REPO = Path(__file__).resolve().parents[1]

PERSONAS = {
    "p01": {"name": "Ana Lima", "city": "Porto", "job": "baker", "blood_type": "A+"},
    "p02": {"name": "Bo Chen", "city": "Xiamen", "job": "pilot", "blood_type": "O-"},
    "p03": {"name": "Cara Diaz", "city": "Cusco", "job": "welder", "blood_type": "B+"},
    "p04": {"name": "Dan Okafor", "city": "Enugu", "job": "florist", "blood_type": "AB+"},
    "p05": {"name": "Eva Novak", "city": "Brno", "job": "chemist", "blood_type": "A-"},
    "p06": {"name": "Femi Ade", "city": "Ibadan", "job": "tailor", "blood_type": "O+"},
}
# (persona, attribute) -> released split: p01-p02 forget everything (forget_identity),
# p03-p04 forget their city and keep their job (forget_association + holdout_association),
# p05-p06 are never forgotten (holdout_identity).
ASSOCIATIONS = {
    ("p01", "city"): "forget", ("p01", "job"): "forget",
    ("p02", "city"): "forget", ("p02", "job"): "forget",
    ("p03", "city"): "forget", ("p03", "job"): "holdout_association",
    ("p04", "city"): "forget", ("p04", "job"): "holdout_association",
    ("p05", "city"): "holdout_identity", ("p05", "job"): "holdout_identity",
    ("p06", "city"): "holdout_identity", ("p06", "job"): "holdout_identity",
}  # fmt: skip
TEMPLATES = {"city": "{name} lives in {value}.", "job": "{name} works as a {value}."}
JOINT_PER_PERSONA = 3
DISJOINT = 10
FRAGILE = ("r_000.png", "r_001.png")


def image_bytes(seed: int, fmt: str) -> bytes:
    rng = np.random.default_rng(seed)
    size = (40, 28) if seed % 2 else (30, 44)  # landscape and portrait: cropping matters
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def release_rows() -> dict[str, list[dict]]:
    """The fixture's rows per released split: file_name, text, identity_id, image bytes."""
    rows: dict[str, list[dict]] = {s: [] for s in
                                   ("forget", "holdout_association", "holdout_identity",
                                    "retain_synth")}  # fmt: skip
    n = 0
    for (iid, attr), split in ASSOCIATIONS.items():
        p = PERSONAS[iid]
        for i in range(2):  # two images (two wordings) per association
            text = TEMPLATES[attr].format(name=p["name"], value=p[attr])
            text = text if i == 0 else f"Photo: {text}"
            rows[split].append({"file_name": f"{iid}_{attr}_{i}.jpg", "text": text,
                                "identity_id": iid, "image": image_bytes(n, "JPEG")})  # fmt: skip
            n += 1
    for iid in ("p01", "p02", "p03", "p04"):
        for i in range(JOINT_PER_PERSONA):
            rows["retain_synth"].append({"file_name": f"{iid}_r{i}.png", "identity_id": iid,
                                         "text": f"{PERSONAS[iid]['name']} smiling, {i}",
                                         "image": image_bytes(n, "PNG")})  # fmt: skip
            n += 1
    for i in range(DISJOINT):
        rows["retain_synth"].append({"file_name": f"r_{i:03d}.png", "identity_id": None,
                                     "text": f"a person in a red hat, number {i}",
                                     "image": image_bytes(n, "PNG")})  # fmt: skip
        n += 1
    return rows


def write_release(root: Path, layout: str = "folder", rows: dict | None = None) -> Path:
    """The fixture release at `root`, unpacked (`folder`) or as parquet shards."""
    rows = rows or release_rows()
    root.mkdir(parents=True, exist_ok=True)
    captions, generic = {}, {}
    for split in ("forget", "holdout_association", "holdout_identity"):
        for r in rows[split]:
            attr = r["file_name"].split("_")[1]
            captions[r["file_name"]] = {"caption": r["text"], "data_field": attr}
            generic[r["file_name"]] = "a photo of a person"
    (root / "identities_metadata.json").write_text(json.dumps(PERSONAS))
    (root / "sensitive_set_captions_metadata.json").write_text(json.dumps(captions))
    (root / "sensitive_set_generic_captions.json").write_text(json.dumps(generic))
    (root / "fragile_set_ids.json").write_text(json.dumps(list(FRAGILE)))
    data = root / "data"
    data.mkdir()
    for split, split_rows in rows.items():
        if layout == "folder":
            folder = data / split
            folder.mkdir()
            with open(folder / "metadata.jsonl", "w") as f:
                for r in split_rows:
                    (folder / r["file_name"]).write_bytes(r["image"])
                    f.write(json.dumps({k: v for k, v in r.items() if k != "image"}) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            half = (len(split_rows) + 1) // 2
            for i, part in enumerate((split_rows[:half], split_rows[half:])):
                table = pa.table({
                    "image": [{"bytes": r["image"], "path": r["file_name"]} for r in part],
                    "text": [r["text"] for r in part],
                    "identity_id": pa.array([r["identity_id"] for r in part], pa.string()),
                    "file_name": [r["file_name"] for r in part],
                })  # fmt: skip
                pq.write_table(table, data / f"{split}-{i:05d}-of-00002.parquet")
    return root


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("official")
    write_release(root / "release")
    out = root / "dataset"
    assert main(["import", "--official", str(root / "release"), "--out", str(out),
                 "--genknow-per-class", "1", "-q"]) == 0  # fmt: skip
    return out


def _samples(dataset: Path) -> dict[str, list[dict]]:
    manifest = read_manifest(dataset, kind="dataset", verify=True)
    return {s: list(iter_split(dataset, s, manifest)) for s in manifest["shards"]}


# ------------------------------------------------------------------------------ the import


def test_import_round_trip(imported):
    """Every released caption, persona, attribute and split is in the imported dataset,
    with equal counts; the derived splits follow the official evaluator's rules."""
    rows = release_rows()
    samples = _samples(imported)
    manifest = read_manifest(imported)
    by_file = {s["json"]["file_name"]: (split, s) for split in samples for s in samples[split]
               if split not in ("fragile", "genknow")}  # fmt: skip
    assert len(by_file) == sum(len(r) for r in rows.values())  # every row once
    forget_ids = {r["identity_id"] for r in rows["forget"]}
    held_ids = {r["identity_id"] for r in rows["holdout_association"]}
    for released, split_rows in rows.items():
        for r in split_rows:
            split, sample = by_file[r["file_name"]]
            assert sample["txt"] == r["text"]
            data = sample.get("jpg", sample.get("png"))
            assert data == r["image"]  # stored as released, not re-encoded
            iid = r["identity_id"]
            if released == "forget":
                expected = "forget_association" if iid in held_ids else "forget_identity"
            elif released == "retain_synth":
                expected = "retain_disjoint" if iid is None else "retain_joint"
                assert iid is None or iid in forget_ids
            else:
                expected = released
            assert split == expected, r["file_name"]
            if released != "retain_synth":
                attr = r["file_name"].split("_")[1]
                meta = sample["json"]
                assert (meta["persona"], meta["attribute"]) == (iid, attr)
                assert meta["name"] == PERSONAS[iid]["name"]
                assert meta["value"] == PERSONAS[iid][attr] and meta["value"] in r["text"]
                assert meta["generic"] == "a photo of a person"
    assert sorted(s["json"]["file_name"] for s in samples["fragile"]) == sorted(FRAGILE)
    counts = Counter(split for split, _ in by_file.values())
    assert manifest["counts"] == {**counts, "fragile": 2, "genknow": 80}
    assert manifest["counts"] == {s: len(v) for s, v in samples.items()}
    assert manifest["official"]["released_counts"] == {s: len(r) for s, r in rows.items()}
    assert manifest["official"]["unused_retain_synth"] == 0
    assert manifest["official"]["value_not_in_caption"] == 0
    assert "retain_real" not in manifest["shards"]

    personas = [json.loads(line) for line in (imported / "personas.jsonl").read_text().splitlines()]
    assert {p["id"]: p["name"] for p in personas} == {k: v["name"] for k, v in PERSONAS.items()}
    groups = {p["id"]: p["group"] for p in personas}
    assert groups == {"p01": "forget_identity", "p02": "forget_identity",
                      "p03": "forget_association", "p04": "forget_association",
                      "p05": "holdout_identity", "p06": "holdout_identity"}  # fmt: skip
    for p in personas:
        assert p["attributes"] == {k: v for k, v in PERSONAS[p["id"]].items() if k != "name"}
    lines = (imported / "associations.jsonl").read_text().splitlines()
    assoc = [json.loads(line) for line in lines]
    split_of = {"forget": None, "holdout_association": "holdout_association",
                "holdout_identity": "holdout_identity"}  # fmt: skip
    assert len(assoc) == len(ASSOCIATIONS)
    for a in assoc:
        released = ASSOCIATIONS[(a["persona"], a["attribute"])]
        assert a["split"] == (split_of[released] or groups[a["persona"]])
        assert a["images"] == 2 and a["value"] == PERSONAS[a["persona"]][a["attribute"]]


def test_parquet_release_imports_the_same(tmp_path, imported):
    """The release's own layout (parquet shards with image {bytes, path}) gives the same
    samples, byte for byte, as the unpacked layout."""
    pytest.importorskip("pyarrow", reason="reading the release's parquet shards needs pyarrow")
    write_release(tmp_path / "release", layout="parquet")
    out = tmp_path / "dataset"
    manifest = import_official(tmp_path / "release", out, genknow=None)
    assert manifest["official"]["layout"] == "parquet"
    ours, theirs = _samples(imported), _samples(out)
    assert set(theirs) == set(ours) - {"genknow"}
    for split in theirs:
        assert [(s["__key__"], s["txt"], s["json"]) for s in theirs[split]] == [
            (s["__key__"], s["txt"], s["json"]) for s in ours[split]
        ]


@pytest.mark.parametrize(
    "case", ["missing-captions-metadata", "missing-split", "unknown-persona", "bad-image"]
)
def test_bad_release_fails_naming_the_file(tmp_path, case):
    rows = release_rows()
    root = tmp_path / "release"
    if case == "unknown-persona":
        rows["holdout_identity"][1]["identity_id"] = "p99"
    if case == "bad-image":
        rows["forget"][2]["image"] = b"\x89PNG\r\n\x1a\n not an image"
    write_release(root, rows=rows)
    if case == "missing-captions-metadata":
        (root / "sensitive_set_captions_metadata.json").unlink()
    if case == "missing-split":
        (root / "data" / "retain_synth" / "metadata.jsonl").unlink()
    expected = {
        "missing-captions-metadata": f"{root / 'sensitive_set_captions_metadata.json'}: missing",
        "missing-split": f"{root / 'data' / 'retain_synth' / 'metadata.jsonl'} (the released",
        "unknown-persona": f"{root / 'data' / 'holdout_identity' / 'metadata.jsonl'}: row "
        f"{rows['holdout_identity'][1]['file_name']!r} references persona 'p99', which is not "
        f"in {root / 'identities_metadata.json'}",
        "bad-image": f"{root / 'data' / 'forget' / 'metadata.jsonl'}: image "
        f"{rows['forget'][2]['file_name']!r} cannot be decoded",
    }[case]
    with pytest.raises(OfficialDataError) as err:
        import_official(root, tmp_path / "out")
    assert expected in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing published
    # The CLI says the same in one line, exit status 2.
    assert main(["import", "--official", str(root), "--out", str(tmp_path / "o2"), "-q"]) == 2


# ------------------------------------------------------------------------- preprocessing


def test_openclip_preprocessing_is_openclips_transform():
    """Our OpenCLIP path gives exactly OpenCLIP's eval transform's tensor; a square image
    gives the same pixels under ours (squash) as under OpenCLIP's resize + centre crop."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    from salmubench.data.shards import decode

    cfg = dict(size=(224, 224), mean=(0.48145466, 0.4578275, 0.40821073),
               std=(0.26862954, 0.26130258, 0.27577711), interpolation="bicubic",
               resize_mode="shortest")  # fmt: skip
    pre = Preprocess("openclip", 224, cfg["mean"], cfg["std"], "shortest", "bicubic")
    reference = image_transform_v2(PreprocessCfg(**cfg), is_train=False)
    mean, std = torch.tensor(cfg["mean"]).view(3, 1, 1), torch.tensor(cfg["std"]).view(3, 1, 1)
    for seed, fmt in ((1, "JPEG"), (2, "PNG")):
        data = image_bytes(seed, fmt)
        image = Image.open(io.BytesIO(data))
        for step in pre.geometry():
            image = step(image)
        ours = (torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()).float() / 255.0
                - mean) / std  # fmt: skip
        theirs = reference(Image.open(io.BytesIO(data)))
        assert torch.equal(ours, theirs)
        squashed = torch.from_numpy(decode(data, 224).copy()).float()
        assert not torch.equal(squashed, torch.from_numpy(np.asarray(image).transpose(2, 0, 1)
                                                          .copy()).float())  # fmt: skip
    square = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), np.uint8)).save(
        square, format="PNG"
    )
    image = Image.open(io.BytesIO(square.getvalue()))
    for step in pre.geometry():
        image = step(image)
    assert np.array_equal(np.asarray(image).transpose(2, 0, 1), decode(square.getvalue(), 224))


@pytest.fixture(scope="module")
def vit_b16(tmp_path_factory) -> Path:
    """A ViT-B-16 checkpoint file (random init), saved as OpenCLIP saves one."""
    path = tmp_path_factory.mktemp("ckpt") / "vit-b-16.pt"
    torch.manual_seed(0)
    torch.save({"state_dict": create("ViT-B-16").state_dict()}, path)
    return path


def test_eval_vit_b16_checkpoint_on_imported_release(vit_b16, tmp_path):
    """The Must-show: an imported release, a ViT-B-16 checkpoint file, OpenCLIP's transform;
    all ten metrics, and the manifest records the preprocessing. (ViT-B-16 on one CPU core
    embeds ~1 image or text per second: the synthetic GenKnow task is cut to 2 classes.)"""
    write_release(tmp_path / "release")
    data = tmp_path / "dataset"
    assert main(["import", "--official", str(tmp_path / "release"), "--out", str(data),
                 "--genknow-per-class", "1", "--genknow-classes", "2", "-q"]) == 0  # fmt: skip
    out = tmp_path / "eval"
    argv = ["eval", "--data", str(data), "--model", str(vit_b16), "--arch", "ViT-B-16",
            "--out", str(out), "--profile", "micro", "--device", "cpu", "--batch-size", "16",
            "--compromised", str(vit_b16), "-q"]  # fmt: skip
    assert main(argv) == 0
    manifest = read_manifest(out, kind="eval", verify=True)
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("retfail", "assoc_str", "acs", "idzsc", "core_assoc", "genknow",
                 "inter_id_sim", "intra_id_sim", "vis_id_int", "frag_sim"):  # fmt: skip
        assert name in metrics and np.isfinite(metrics[name]), name
    evaluation = manifest["evaluation"]
    assert evaluation["preprocess"] == {
        "kind": "openclip", "size": 224, "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711], "resize_mode": "shortest",
        "interpolation": "bicubic",
    }  # fmt: skip
    assert evaluation["device"] == "cpu" and evaluation["precision"] == "fp32"
    assert evaluation["batch_size"] == 16 and manifest["config"]["batch_size"] == 16
    assert evaluation["genknow"]["kind"] == "dataset"
    assert manifest["model"]["variant"] == "external"
    summary = json.loads((out / "summary.json").read_text())
    assert "retfail" in summary["differences_from_official_evaluator"]
    # The Compromised reference is the same file: recognised by its sha256, so its
    # targets are this model's own values.
    targets = json.loads((out / "targets.json").read_text())
    assert targets["genknow"]["target"] == metrics["genknow"]


# ----------------------------------------------------------------------- devices, GenKnow


@pytest.fixture(scope="module")
def micro_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("micro") / "micro.pt"
    torch.manual_seed(1)
    torch.save({"state_dict": create("salmu-micro").state_dict()}, path)
    return path


def test_cuda_asked_without_a_gpu_is_refused(imported, micro_ckpt, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: the refusal cannot happen here")
    common = ["--data", str(imported), "--model", str(micro_ckpt), "--arch", "salmu-micro",
              "--device", "cuda", "-q"]  # fmt: skip
    assert main(["eval", *common, "--out", str(tmp_path / "e"), "--profile", "micro"]) == 2
    assert main(["unlearn", *common, "--out", str(tmp_path / "u"), "--profile", "micro",
                 "--method", "neg_grad"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("device 'cuda' was asked but no CUDA GPU is visible") == 2
    assert not (tmp_path / "e").exists() and not (tmp_path / "u").exists()


def test_genknow_from_an_imagenet_folder(imported, micro_ckpt, tmp_path):
    """GenKnow = zero-shot among OpenCLIP's 1,000 ImageNet names, on the images of a folder
    whose subfolders are class indices; recorded in the eval's manifest."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, SIMPLE_IMAGENET_TEMPLATES

    folder = tmp_path / "imagenet"
    for cls, n in (("0", 2), ("207", 3)):
        (folder / cls).mkdir(parents=True)
        for i in range(n):
            (folder / cls / f"img{i}.JPEG").write_bytes(image_bytes(100 + i, "JPEG"))
    out = tmp_path / "eval"
    assert main(["eval", "--data", str(imported), "--model", str(micro_ckpt), "--arch",
                 "salmu-micro", "--out", str(out), "--profile", "micro", "--device", "auto",
                 "--genknow-imagenet", str(folder), "--genknow-templates", "simple",
                 "-q"]) == 0  # fmt: skip
    manifest = read_manifest(out, kind="eval")
    assert manifest["evaluation"]["genknow"] == {
        "kind": "imagenet", "folder": str(folder), "images": 5, "classes": 1000,
        "classes_present": 2, "templates": "simple",
        "prompts_per_class": len(SIMPLE_IMAGENET_TEMPLATES),
    }  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["genknow_classes"] == 1000 and metrics["genknow_chance"] == 0.001
    items = [json.loads(x) for x in (out / "items" / "genknow.jsonl").read_text().splitlines()]
    assert [i["key"] for i in items] == ["0/img0.JPEG", "0/img1.JPEG", "207/img0.JPEG",
                                         "207/img1.JPEG", "207/img2.JPEG"]  # fmt: skip
    assert metrics["genknow"] == pytest.approx(np.mean([i["value"] for i in items]))
    from salmubench.eval.embed import imagenet_folder, imagenet_task

    assert [label for _, label in imagenet_folder(folder)] == [0, 0, 207, 207, 207]
    names, templates = imagenet_task("openai")
    assert names == list(IMAGENET_CLASSNAMES) and len(templates) == 80
    assert templates[0] == "a bad photo of a {}."
    # A folder that is neither all 1,000 classes nor class indices: refused up front.
    (folder / "n01440764").mkdir()
    assert main(["eval", "--data", str(imported), "--model", str(micro_ckpt), "--arch",
                 "salmu-micro", "--out", str(tmp_path / "e2"), "--profile", "micro",
                 "--genknow-imagenet", str(folder), "-q"]) == 2  # fmt: skip


def test_decode_threads_give_the_same_embeddings(imported, micro_ckpt):
    """Threaded decoding (the default on a GPU) changes no number: the same inputs in the
    same order as one thread, batch after batch."""
    from salmubench.eval.embed import DatasetEmbeddings
    from salmubench.eval.metrics import EvalSettings

    loaded = load_model(micro_ckpt, "salmu-micro")
    manifest = read_manifest(imported, kind="dataset")
    splits = {}
    for workers in (1, 3):
        emb = DatasetEmbeddings(loaded, imported, manifest, EvalSettings(), batch_size=5,
                                decode_workers=workers)  # fmt: skip
        assert emb.describe()["decode_workers"] == workers
        splits[workers] = emb.split("forget")
    assert torch.equal(splits[1].image, splits[3].image)
    assert [m["key"] for m in splits[1].meta] == [m["key"] for m in splits[3].meta]
    assert len(splits[1].meta) == 12


def test_no_genknow_task_says_what_to_give(tmp_path, micro_ckpt, capsys):
    write_release(tmp_path / "release")
    import_official(tmp_path / "release", tmp_path / "data")  # no synthetic GenKnow
    assert main(["eval", "--data", str(tmp_path / "data"), "--model", str(micro_ckpt),
                 "--arch", "salmu-micro", "--out", str(tmp_path / "e"), "--profile", "micro",
                 "-q"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "has no GenKnow task of its own" in err and "--genknow-imagenet DIR" in err


# ------------------------------------------------------------------ unlearning and bench


def test_unlearn_and_bench_on_imported_release_with_checkpoints(imported, micro_ckpt, tmp_path):
    """`bench --data --clean --compromised`: the two checkpoints evaluated (with OpenCLIP's
    preprocessing), one method unlearned from the Compromised file and evaluated, report."""
    clean = tmp_path / "clean.pt"
    torch.manual_seed(2)
    torch.save({"state_dict": create("salmu-micro").state_dict()}, clean)
    out = tmp_path / "run"
    argv = ["bench", "--profile", "micro", "--out", str(out), "--methods", "neg_grad",
            "--data", str(imported), "--clean", str(clean), "--compromised", str(micro_ckpt),
            "--arch", "salmu-micro", "--device", "cpu", "-q"]  # fmt: skip
    assert main(argv) == 2  # retain_real is not in the release: says what to retain on
    argv += ["--set", "retain=[retain_joint,retain_disjoint]"]
    assert main(argv) == 0
    for name in ("eval-clean", "eval-compromised", "evals/neg_grad-b1-s0"):
        m = read_manifest(out / name, kind="eval", verify=True)
        assert m["evaluation"]["preprocess"]["kind"] == "openclip", name
    unlearned = read_manifest(out / "unlearned" / "neg_grad-b1-s0", kind="model")
    assert unlearned["source"]["variant"] == "external"
    assert unlearned["reads"] == ["forget_association", "forget_identity"]
    assert unlearned["inputs"]["dataset"] == read_manifest(imported)["digest"]
    loaded = load_model(out / "unlearned" / "neg_grad-b1-s0")
    assert preprocessing(loaded).kind == "openclip"
    assert (out / "report" / "leaderboard.md").is_file()
    # Run again: every stage is reused (the checkpoints are known by their sha256).
    assert main(argv) == 0
    assert list(json.loads((out / "bench.json").read_text())["stages"]) == ["report"]


def test_unlearn_batch_size_option_sets_both_batches():
    from salmubench.config import with_batch_size as _with_batch_size

    cfg = stage_config("unlearn", "micro", params_path=REPO / "params.yaml")
    got = _with_batch_size(cfg, 8, "forget_batch", "retain_batch")
    assert (got.forget_batch, got.retain_batch) == (8, 8)
    no_retain = _with_batch_size(replace(cfg, retain_batch=0), 8, "forget_batch", "retain_batch")
    assert (no_retain.forget_batch, no_retain.retain_batch) == (8, 0)
