"""Relearning attacks (`salmubench attack`): the weight rounding and the recovery gap by hand,
the attacker's reads, a model that only suppressed its memory against Clean, resume, errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from salmubench.attack.recovery import gaps
from salmubench.attack.stage import ATTACK_FILE, attack, attacker_pool
from salmubench.attack.threat import round_weights, split_personas
from salmubench.cli import main
from salmubench.config import ConfigError, stage_config
from salmubench.data.evaluated import is_evaluated
from salmubench.data.shards import iter_split
from salmubench.manifest import read_manifest, staged_output, write_manifest
from salmubench.models import image_normalisation, image_size, load_model, save_model
from salmubench.models import tokenizer as get_tokenizer
from salmubench.unlearn.data import load_unlearn_pools, open_for_unlearning
from salmubench.vocab import ATTACKS, FORBIDDEN, FORGET_SPLITS

from helpers import spawn

REPO = Path(__file__).resolve().parents[1]


def cfgs(**attack_overrides):
    overrides = [f"{k}={json.dumps(v)}" for k, v in attack_overrides.items()]
    return {
        "cfg": stage_config("attack", "micro", overrides, REPO / "params.yaml"),
        "eval_cfg": stage_config("eval", "micro", (), REPO / "params.yaml"),
        "retain": stage_config("unlearn", "micro", (), REPO / "params.yaml").retain,
    }


def test_weights_are_rounded_per_output_channel():
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -0.5, 0.3], [0.02, 0.0, -0.011]]))
        layer.bias.copy_(torch.tensor([0.123456789, -1.0]))
    int8 = round_weights(layer, "int8")
    # row 0: scale 1/127: 0.3 * 127 = 38.1 -> 38; row 1: scale 0.02/127: -0.011 -> -69.85 -> -70
    expected = torch.tensor([[127, -64, 38], [127, 0, -70]]) * torch.tensor(
        [[1 / 127], [0.02 / 127]]
    )
    assert torch.allclose(int8.weight, expected, atol=1e-7)
    assert torch.equal(int8.bias, layer.bias)  # biases are kept
    bf16 = round_weights(layer, "bf16")
    assert torch.equal(bf16.weight, layer.weight.to(torch.bfloat16).float())
    assert not torch.equal(bf16.weight, layer.weight)  # 0.3 is not a bfloat16
    assert torch.equal(layer.weight[0], torch.tensor([1.0, -0.5, 0.3]))  # the original stays
    with pytest.raises(ValueError, match=r"int3.*valid: int8, int4, bf16"):
        round_weights(layer, "int3")


def test_int4_weights_are_rounded_per_group_of_inputs():
    layer = torch.nn.Linear(33, 1, bias=False)  # one full group of 32 inputs, one of 1
    w = torch.zeros(1, 33)
    w[0, 0], w[0, 1], w[0, 2], w[0, 32] = 0.7, -0.25, 0.04, -0.3
    with torch.no_grad():
        layer.weight.copy_(w)
    int4 = round_weights(layer, "int4")
    # group 1: scale 0.7/7 = 0.1: -0.25 -> -2.5 -> -2 (half to even), 0.04 -> 0.4 -> 0;
    # group 2 holds -0.3 alone: its own scale, so it is exact
    expected = torch.zeros(1, 33)
    expected[0, 0], expected[0, 1], expected[0, 32] = 0.7, -0.2, -0.3
    assert torch.allclose(int4.weight, expected, atol=1e-7)


def test_recovery_gap_by_hand():
    model = {
        "before": {"retfail": 0.10, "assoc_str": 0.20},
        "points": [
            {"point": "a", "scores": {"retfail": 0.50, "assoc_str": 0.30}},
            {"point": "b", "scores": {"retfail": 0.20, "assoc_str": 0.60}},
        ],
    }
    clean = {
        "before": {"retfail": 0.05, "assoc_str": 0.10},
        "points": [
            {"point": "a", "scores": {"retfail": 0.15, "assoc_str": 0.10}},
            {"point": "b", "scores": {"retfail": 0.05, "assoc_str": 0.30}},
        ],
    }
    got = gaps(model, clean, {"retfail": 0.85, "assoc_str": 0.60})
    # a: RetFail ((0.5 - 0.1) - (0.15 - 0.05)) / (0.85 - 0.05) = 0.3 / 0.8 = 0.375
    #    AssocStr ((0.3 - 0.2) - 0) / 0.5 = 0.2;  b: (0.1 - 0) / 0.8 = 0.125, (0.4 - 0.2) / 0.5
    assert got["points"][0]["retfail"] == pytest.approx(0.375)
    assert got["points"][0]["assoc_str"] == pytest.approx(0.2)
    assert got["points"][1]["retfail"] == pytest.approx(0.125)
    assert got["points"][1]["assoc_str"] == pytest.approx(0.4)
    assert got["worst"]["point"] == "a"  # the worst case is read on RetFail
    assert got["scale"] == {"retfail": pytest.approx(0.8), "assoc_str": pytest.approx(0.5)}
    with pytest.raises(ValueError, match=r"lacks sweep points \['b'\]"):
        gaps(model, {**clean, "points": clean["points"][:1]}, {"retfail": 1, "assoc_str": 1})


def test_persona_split_is_seeded_disjoint_and_never_empty():
    ids = [f"p{i:02d}" for i in range(10)] * 3
    a, b = split_personas(ids, 0.5, seed=0)
    assert len(a) == len(b) == 5 and not a & b and a | b == set(ids)
    assert split_personas(ids, 0.5, seed=0) == (a, b)
    assert split_personas(ids, 0.5, seed=1) != (a, b)
    assert len(split_personas(ids, 0.99, seed=0)[1]) == 1  # never all on one side
    with pytest.raises(ValueError, match="needs >= 2 forget personas, found 1"):
        split_personas(["p0", "p0"], 0.5, seed=0)


def test_the_attacker_reads_no_holdout_and_no_evaluated_item(tmp_path, micro_dataset):
    """With every holdout and evaluation shard deleted, each attack still builds its pool
    (it never opens them); the retain pool holds no item a metric reads, and the persona
    split trains only on its own personas."""
    data = tmp_path / "data"
    shutil.copytree(micro_dataset, data)
    manifest = read_manifest(data, kind="dataset")
    for split in FORBIDDEN:
        for name in manifest["shards"].get(split, []):
            (data / name).unlink()
    c = cfgs()
    evaluated = {
        s["__key__"]
        for split in ("retain_joint", "retain_disjoint")
        for s in iter_split(micro_dataset, split, manifest)
        if is_evaluated(split, s["__key__"], s["json"])
    }
    assert evaluated
    persona_of = {
        s["__key__"]: s["json"]["persona"]
        for split in FORGET_SPLITS
        for s in iter_split(data, split, manifest)
    }
    for name in ATTACKS:
        dataset = open_for_unlearning(data, c["retain"] if name == "retain_only" else ())
        pool, trained, scored = attacker_pool(
            data, dataset, name, c["cfg"], c["retain"], get_tokenizer("salmu-micro"), 32
        )
        assert len(pool) > 0
        assert not set(pool.keys) & evaluated, name
        if name == "persona_split":
            assert {persona_of[k] for k in pool.keys} == trained and not trained & scored
        elif name == "retain_only":
            assert not set(pool.keys) & set(persona_of)  # no forget pair either
        else:
            assert set(pool.keys) == set(persona_of)


def suppress(data: Path, compromised: Path, out: Path, steps: int = 30) -> Path:
    """An 'unlearned' model that changed nothing but its two final projections: forget pairs
    pushed apart, general-world (retain_real) embeddings kept where they were. Whatever the
    encoders learnt about the forget personas is still there."""
    retain = ("retain_real",)
    loaded = load_model(compromised)
    net, frozen = loaded.model.train(), load_model(compromised).model.eval()
    dataset = open_for_unlearning(data, retain)
    pools = load_unlearn_pools(
        data,
        dataset,
        retain,
        get_tokenizer(loaded.arch),
        image_size(net),
        retain_size=200,
        seed=0,
        with_retain=True,
    )
    mean, std = image_normalisation(net)
    heads = [net.visual.proj, net.text_projection]
    for p in net.parameters():
        p.requires_grad_(any(p is h for h in heads))
    opt = torch.optim.Adam(heads, lr=1e-2)
    f, r = pools["forget"], pools["retain"]
    for step in range(steps):
        fi = torch.arange(step * 32, step * 32 + 32) % len(f)
        ri = torch.arange(step * 32, step * 32 + 32) % len(r)
        out_f = net((f.images[fi].float() / 255 - mean) / std, f.tokens[fi])
        xr = (r.images[ri].float() / 255 - mean) / std
        out_r = net(xr, r.tokens[ri])
        with torch.no_grad():
            ref = frozen(xr, r.tokens[ri])
        cos = (out_f["image_features"] * out_f["text_features"]).sum(-1)
        keep = (out_r["image_features"] - ref["image_features"]).pow(2).sum(-1).mean() + (
            out_r["text_features"] - ref["text_features"]
        ).pow(2).sum(-1).mean()
        loss = cos.mean() + 10 * keep
        opt.zero_grad()
        loss.backward()
        opt.step()
    with staged_output(out) as tmp:
        save_model(tmp, net, loaded.arch, {"variant": "unlearned"})
        write_manifest(
            tmp,
            "model",
            config={"steps": steps},
            inputs={"dataset": dataset["digest"]},
            architecture=loaded.arch,
            variant="unlearned",
            method="projection_only",
        )
    return out


@pytest.fixture(scope="module")
def memorising(tmp_path_factory, micro_dataset) -> dict[str, Path]:
    """Clean and Compromised micro models trained long enough to memorise (the session's
    40-step micro models barely do: RetFail 0.07 against Clean's 0.04 on the full gallery)."""
    from salmubench.train.loop import train

    root = tmp_path_factory.mktemp("memorising")
    cfg = stage_config(
        "train", "micro", ["steps=200", "lr=3e-3", "checkpoint_every=1000"], REPO / "params.yaml"
    )
    for variant in ("clean", "compromised"):
        train(micro_dataset, variant, cfg, root / variant, profile="micro")
    return {"clean": root / "clean", "compromised": root / "compromised"}


def test_an_attack_recovers_what_was_only_suppressed_and_little_on_clean(
    tmp_path, micro_dataset, memorising
):
    clean, compromised = memorising["clean"], memorising["compromised"]
    suppressed = suppress(micro_dataset, compromised, tmp_path / "suppressed")
    c = cfgs()
    # every forget caption in the gallery: micro's paper-proportion gallery holds 8 captions
    c["eval_cfg"] = stage_config(
        "eval", "micro", ["retfail_forget_fraction=1.0"], REPO / "params.yaml"
    )
    attack(micro_dataset, clean, tmp_path / "a-clean", name="persona_split", **c)
    attack(
        micro_dataset,
        suppressed,
        tmp_path / "a-supp",
        name="persona_split",
        clean=tmp_path / "a-clean",
        compromised=compromised,
        **c,
    )
    record = json.loads((tmp_path / "a-supp" / ATTACK_FILE).read_text())
    before, worst = record["model"]["before"], record["recovery"]["worst"]
    scale = record["recovery"]["scale"]["retfail"]
    clean_before = record["clean"]["before"]["retfail"]
    assert scale > 0.3  # the Compromised model memorised the scored personas
    # the suppression worked: the scored personas look mostly forgotten before the attack
    assert before["retfail"] - clean_before < 0.25 * scale
    # fine-tuning on the OTHER personas brings a good part of it back ...
    assert worst["retfail"] > 0.2
    # ... while Clean, attacked the same way, gains nothing on personas it never saw
    restored = max(p["scores"]["retfail"] for p in record["clean"]["points"]) - clean_before
    assert restored < 0.1 * scale
    reads = record["reads"]
    assert not set(reads["personas_trained"]) & set(reads["personas_scored"])
    manifest = read_manifest(tmp_path / "a-supp", kind="attack", verify=True)
    assert manifest["attack"] == "persona_split" and manifest["recovery"] == worst
    assert not (tmp_path / ".a-supp.points").exists()  # the resume cache goes with success


def scores(record: dict) -> list[float]:
    block = record["model"]
    return [block["before"][k] for k in sorted(block["before"])] + [
        p["scores"][k] for p in block["points"] for k in sorted(p["scores"])
    ]


def test_an_interrupted_attack_resumes_with_the_same_result(tmp_path, micro_dataset, micro_models):
    args = ["attack", "--data", str(micro_dataset), "--model", str(micro_models["compromised"]),
            "--attack", "persona_split", "--profile", "micro", "-q",
            "--set", "lrs=[0.001, 0.0001]", "--set", "steps=[5, 10]"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    out, points = tmp_path / "cut", tmp_path / ".cut.points"
    proc = spawn([*args, "--out", str(out)])
    deadline = time.monotonic() + 120
    while len(list(points.glob("*.json"))) < 3:  # before + the first rate's two points
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no sweep point was written"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing half-published
    assert main([*args, "--out", str(out)]) == 0
    whole = json.loads((tmp_path / "whole" / ATTACK_FILE).read_text())
    cut = json.loads((out / ATTACK_FILE).read_text())
    assert whole["resumed_points"] == 0 and cut["resumed_points"] >= 3
    assert [p["point"] for p in cut["model"]["points"]] == [
        p["point"] for p in whole["model"]["points"]
    ]
    assert scores(cut) == pytest.approx(scores(whole), abs=1e-5)
    assert not points.exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--set", "lrs=[-1e-4]"], "lrs=[-0.0001]: give one or more positive learning rates"),
        (["--set", "split_fraction=1.0"], "split_fraction=1.0: must be in (0, 1)"),
        (["--set", "precisions=[int3]"], "precisions=['int3']: valid: int8, int4, bf16"),
    ],
)
def test_bad_settings_are_refused_before_any_work(
    tmp_path, capsys, micro_dataset, micro_models, extra, expected
):
    out = tmp_path / "a"
    args = ["attack", "--data", str(micro_dataset), "--model", str(micro_models["clean"]),
            "--attack", "low_precision", "--profile", "micro", "--out", str(out)]  # fmt: skip
    args += extra
    assert main(args) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_a_model_of_another_dataset_or_a_mismatched_clean_attack_is_refused(
    tmp_path, capsys, micro_dataset, micro_models
):
    c = cfgs()
    other = tmp_path / "other"
    shutil.copytree(micro_models["clean"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["inputs"]["dataset"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"not on .* an attack is scored on the model's own"):
        attack(micro_dataset, other, tmp_path / "x", name="low_precision", **c)
    attack(micro_dataset, micro_models["clean"], tmp_path / "lp", name="low_precision", **c)
    with pytest.raises(ConfigError, match="an attack folder of attack 'low_precision', not"):
        attack(micro_dataset, micro_models["compromised"], tmp_path / "y",
               name="retain_only", clean=tmp_path / "lp", **c)  # fmt: skip
    # a setting low_precision never reads keeps the reference; one it reads refuses it
    unread = {**c, "cfg": dataclasses.replace(c["cfg"], lrs=(5e-5,), split_fraction=0.25)}
    attack(micro_dataset, micro_models["compromised"], tmp_path / "z", name="low_precision",
           clean=tmp_path / "lp", **unread)  # fmt: skip
    read = {**c, "cfg": dataclasses.replace(c["cfg"], precisions=("int4",))}
    with pytest.raises(ConfigError, match=r"other attack settings: precisions .*int4.*\(now "):
        attack(micro_dataset, micro_models["compromised"], tmp_path / "y", name="low_precision",
               clean=tmp_path / "lp", **read)  # fmt: skip
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# --------------------------------------------------------------------------- bench --attacks


def test_bench_attacks_clean_then_every_unlearned_model_and_reuses_them(
    tmp_path, micro_dataset, memorising
):
    """The real chain on micro, on the memorising models (the session's 40-step ones barely
    memorise: no gap to recover): low precision (the cheap attack) on Clean once, then on
    each unlearned model, in <world>/attacks/; the report gets the robust column; a second
    run reuses every attack folder."""
    import yaml

    from salmubench.bench import External, bench

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profiles"]["micro"]["eval"]["retfail_forget_fraction"] = 1.0  # every forget caption
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    given = External(data=micro_dataset, **memorising)
    out, lines = tmp_path / "b", []

    def run():
        bench("micro", out, methods=["finetune"], budget=0.1, seeds=[0, 1], external=given,
              attacks=["low_precision"], params_path=tmp_path / "params.yaml",
              say=lines.append)  # fmt: skip

    run()
    ran = [line.split("] ")[1].rsplit(":", 1)[0] for line in lines
           if line.startswith("[") and " attack " in line and line.endswith(" s")]  # fmt: skip
    assert ran == [
        "attack clean low_precision",  # the Clean reference first, once
        "attack finetune-b0.1-s0 low_precision",
        "attack finetune-b0.1-s1 low_precision",
    ]
    clean = out / "attacks" / "clean" / "low_precision"
    for model in ("finetune-b0.1-s0", "finetune-b0.1-s1"):
        record = json.loads((out / "attacks" / model / "low_precision" / ATTACK_FILE).read_text())
        assert record["model"]["path"] == str(out / "unlearned" / model)
        assert record["clean"] == json.loads((clean / ATTACK_FILE).read_text())["model"]
        assert record["recovery"]["worst"]["point"].startswith("weights=")
    board = json.loads((out / "report" / "leaderboard.json").read_text())
    row = next(r for r in board["rows"] if r["method"] == "finetune")
    gap = row["attacks"]["low_precision"]
    assert (gap["n"], gap["interval_source"]) == (2, "seeds") and gap["retfail"]["ci"]
    assert row["robust"]["verdict"] in ("robust", "not robust", "borderline")
    assert "recovery.png" in read_manifest(out / "report", kind="report")["files"]
    assert "| robust | low_precision gap |" in (out / "report" / "leaderboard.md").read_text()

    def rerun_attacks(**attack_settings) -> list[str]:
        params["profiles"]["micro"]["attack"].update(attack_settings)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        lines.clear()
        run()
        return [line for line in lines if line.startswith("[") and " attack " in line]

    reused = rerun_attacks()
    assert len(reused) == 3 and all(line.endswith("up to date, reused") for line in reused)
    # a setting low precision never reads keeps its folders; one it reads re-runs them
    assert all(line.endswith("reused") for line in rerun_attacks(split_fraction=0.25))
    assert not any(line.endswith("reused") for line in rerun_attacks(precisions=["bf16"]))


def test_bench_attacks_are_checked_before_any_work(tmp_path, micro_dataset, micro_models):
    from salmubench.bench import External, bench
    from salmubench.bench_attacks import parse_attacks

    assert parse_attacks("none") == [] and parse_attacks("all") == list(ATTACKS)
    assert parse_attacks("retain_only, persona_split") == ["retain_only", "persona_split"]
    with pytest.raises(ConfigError, match=r"--attacks 'persona': unknown persona; valid: none, "
                       r"all, or a comma-separated list of persona_split"):  # fmt: skip
        parse_attacks("persona")
    with pytest.raises(ConfigError, match="attacks: unknown int4; valid: persona_split"):
        bench("micro", tmp_path / "b", methods=["finetune"], attacks=["int4"])
    checkpoint = tmp_path / "clean.pt"
    checkpoint.write_bytes(b"weights")
    given = External(data=micro_dataset, clean=checkpoint, arch="salmu-micro",
                     compromised=micro_models["compromised"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"--clean .*clean.pt is a checkpoint file; an attack"):
        bench("micro", tmp_path / "b", methods=["finetune"], attacks=["low_precision"],
              external=given)  # fmt: skip
    assert not (tmp_path / "b").exists()
