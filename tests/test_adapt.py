"""`ocr adapt`: input checks, the split, interpolation and its weight, the paired verdict, the forgetting probe,
self-training inputs, a tiny real run, interruption safety, the refuse-if-worse rule."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from crnn import Recognizer
from crnn.charset import ENGLISH_G2_ALPHABET, Charset
from crnn.decode import Result
from crnn.gate import DomainGate
from crnn.preprocess import to_gray
from crnn.weights import load_checkpoint, load_model, save_checkpoint
from ocr.adapt import height as adapt_height
from ocr.adapt import job as adapt_job
from ocr.adapt import options as adapt_options
from ocr.adapt.augment import Augmenter
from ocr.adapt.data import (
    LabelledImage,
    label_case,
    load_labelled,
    load_unlabelled,
    split_folds,
    split_holdout,
)
from ocr.adapt.forgetting import (
    GATE_LEAK,
    PROBE_FLOOR,
    PROBE_RESOLUTION,
    UPPER_Z,
    ForgettingProbe,
    gate_leak,
    gated_drop,
    upper_drop,
)
from ocr.adapt.gate import CUT_GATE_THRESHOLD, GATE_THRESHOLD, OVERRIDE_MARGIN, fit_gate, gate_threshold
from ocr.adapt.general import PROBE_CHARS, gate_general_set, hard_general_set
from ocr.adapt.height import MIN_FRAMING_GAIN, ROW_CROPS, choose_height, choose_view
from ocr.adapt.job import run_adapt
from ocr.adapt.options import WEIGHTS, Option, choose_option, routed
from ocr.adapt.render import Renderer, TextSampler, estimate_style
from ocr.adapt.report import compare_paired, is_better, render_markdown
from ocr.adapt.scoring import Scorer, columns
from ocr.adapt.train import (
    BATCH_COLUMNS,
    MIN_BATCH,
    TrainConfig,
    TrainingDiverged,
    batch_size_for,
    fine_tune,
    interpolate,
    update_average,
)
from ocr.cli import build_parser, main
from ocr.data.datasets import DatasetError, open_dataset
from ocr.data.lmdb_io import write_lmdb
from ocr.eval.metrics import bootstrap
from ocr.fonts import find_fonts
from tests.conftest import EXAMPLES, encode, example_bytes, tiny_config

CHARSET = Charset(ENGLISH_G2_ALPHABET)


def copy_examples(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.mark.parametrize("layout", ["tsv", "csv", "json", "lmdb"])
def test_every_layout_loads_the_same_samples(tmp_path: Path, layout: str) -> None:
    labels = ["AB12", "cd 34", "E,F", "7"]
    images = [np.full((20, 40 + 10 * i), 255 - 30 * i, np.uint8) for i in range(4)]
    root = tmp_path / layout
    root.mkdir()
    if layout == "lmdb":
        write_lmdb(root, [(encode(im), label) for im, label in zip(images, labels)], map_size=1 << 22)
    else:
        for i, im in enumerate(images):
            (root / f"{i}.png").write_bytes(encode(im))
        if layout == "tsv":
            (root / "gt.tsv").write_text("".join(f"{i}.png\t{label}\n" for i, label in enumerate(labels)))
        elif layout == "csv":
            rows = "".join(f"{i}.png,{t}\n" for i, t in enumerate(labels))
            (root / "labels.csv").write_text("filename,words\n" + rows)
        else:
            (root / "labels.json").write_text(json.dumps({f"{i}.png": t for i, t in enumerate(labels)}))
    samples = load_labelled(root, CHARSET)
    assert [s.label for s in samples] == labels
    assert [s.gray.shape for s in samples] == [im.shape for im in images]


def test_empty_folder_and_no_labels(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="gt.tsv.*\n.*labels.csv"):
        load_labelled(tmp_path, CHARSET)
    assert main(["adapt", str(tmp_path), "--out", str(tmp_path / "m")]) == 2


def test_bad_forgetting_limit_and_unlabelled_folder_are_refused(tmp_path: Path, capsys) -> None:
    data = copy_examples(tmp_path)
    assert main(["adapt", str(data), "--out", str(tmp_path / "m"), "--max-forgetting", "2"]) == 2
    assert "--max-forgetting" in capsys.readouterr().err
    (tmp_path / "nothing").mkdir()
    assert main(["adapt", str(data), "--out", str(tmp_path / "m"), "--unlabeled", str(tmp_path / "nothing")]) == 2
    assert "no readable images" in capsys.readouterr().err
    assert not (tmp_path / "m" / "model.pt").exists()


def test_unknown_characters_listed_and_fixable(tmp_path: Path) -> None:
    data = copy_examples(tmp_path)
    gt = data / "gt.tsv"
    gt.write_text(gt.read_text().replace("HELLO", "HÉLLO").replace("Street", "Straße"))
    with pytest.raises(DatasetError) as info:
        load_labelled(data, CHARSET)
    message = str(info.value)
    assert "'É'" in message and "'ß'" in message and "images/00.png" in message and "--normalize" in message
    fixed = load_labelled(data, CHARSET, ("drop-unknown",))
    assert fixed[0].label == "HLLO"
    assert load_labelled(data, CHARSET, ("upper", "drop-unknown"))[7].label == "STRASSE"  # ß upper-cases to SS


def test_corrupt_images_are_skipped_with_a_warning_or_abort(tmp_path: Path) -> None:
    data = copy_examples(tmp_path)
    (data / "images" / "03.png").write_bytes(b"\x89PNG broken")
    warnings: list[str] = []
    with pytest.raises(DatasetError, match="over 10%"):  # 1 of 8 is 12.5%
        load_labelled(data, CHARSET, warn=warnings.append)
    extra = "".join(f"images/{i:02d}.png\tX{i}\n" for i in range(8) if i != 3) * 2
    (data / "gt.tsv").write_text((data / "gt.tsv").read_text() + extra)
    samples = load_labelled(data, CHARSET, warn=warnings.append)
    assert len(samples) == 21 and "images/03.png" in warnings[0]


def test_split_is_stratified_disjoint_and_seeded() -> None:
    samples = [LabelledImage(str(i), np.zeros((4, 4), np.uint8), "x" * (1 + i % 4)) for i in range(80)]
    train, held = split_holdout(samples, 0.25, seed=3)
    assert len(held) == 20 and not set(train) & set(held) and len(train) + len(held) == 80
    lengths = [len(samples[i].label) for i in held]
    assert all(lengths.count(n) == 5 for n in (1, 2, 3, 4))
    assert split_holdout(samples, 0.25, seed=3) == (train, held)
    assert split_holdout(samples, 0.25, seed=4) != (train, held)


def test_cache_key_depends_on_the_split(tmp_path: Path) -> None:
    from ocr.adapt.data import read_cache, split_key, store_split

    assert split_key("abc", 0, 0.25) != split_key("abc", 1, 0.25) != split_key("abc", 0, 0.3)
    samples = [LabelledImage(str(i), np.full((8, 20), 9 * i, np.uint8), f"L{i}") for i in range(5)]
    folder = tmp_path / "cache" / split_key("abc", 0, 0.25)
    folder.parent.mkdir()
    store_split(folder, samples[:3], samples[3:])
    assert [s.label for s in read_cache(folder / "train")] == ["L0", "L1", "L2"]
    assert [s.label for s in read_cache(folder / "holdout")] == ["L3", "L4"]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left


def test_rendering_follows_label_alphabet_and_style() -> None:
    fonts = find_fonts("0123456789")
    assert fonts and not any(f.name.lower().startswith(("cmex", "lastresort")) for f in fonts)
    dark_on_light = np.full((30, 80), 220, np.uint8)
    dark_on_light[10:20, 10:70] = 30
    style = estimate_style(dark_on_light)
    assert style.ink < 60 and style.paper > 200
    image = Renderer(fonts, [style], seed=0).render("12345")
    assert image.dtype == np.uint8 and image.mean() > 120
    sampler = TextSampler(["1234", "56789"], seed=0)
    texts = [sampler.sample() for _ in range(50)]
    assert all(set(t) <= set("123456789") and 1 <= len(t) <= 5 for t in texts)


def test_bootstrap_and_verdict() -> None:
    labels = ["abc", "def", "ghi", "jkl"]
    a = bootstrap(["abc", "def", "ghi", "xyz"], labels)
    z = bootstrap(["abc", "xxx", "yyy", "zzz"], labels)
    assert a["loose"].value == 0.75 and a["loose"].low <= 0.75 <= a["loose"].high
    assert z["cer"].value == pytest.approx(9 / 12)
    assert is_better(a, z) and not is_better(z, a) and not is_better(a, a)


def test_paired_comparison_counts_disagreements_and_tests_them() -> None:
    labels = [f"w{i}" for i in range(30)]
    zero = [f"w{i}" if i < 15 else "x" for i in range(30)]
    # The adapted model gains images 15-26 and loses none: 12 discordant pairs, all one way.
    adapted = [f"w{i}" if i < 27 else "x" for i in range(30)]
    paired = compare_paired(zero, adapted, labels, seed=0)
    assert (paired["gains"], paired["losses"]) == (12, 0)
    assert paired["p_value"] == pytest.approx(2 * 0.5**12) and paired["verdict"] == "better"
    assert paired["difference"].value == pytest.approx(0.4) and 0 < paired["difference"].low <= 0.4
    # Two gains and one loss on three images is no evidence either way.
    thin = compare_paired(["a", "x", "x"], ["x", "b", "c"], ["a", "b", "c"], seed=0)
    assert (thin["gains"], thin["losses"], thin["verdict"]) == (2, 1, "inconclusive") and thin["p_value"] == 1.0
    worse = compare_paired(adapted, zero, labels, seed=0)
    assert worse["verdict"] == "worse" and worse["difference"].value < 0


def test_interpolation_is_a_straight_line_between_the_two_networks() -> None:
    pretrained = {"w": torch.zeros(3), "n": torch.tensor(5)}
    tuned = {"w": torch.tensor([1.0, 2.0, 4.0]), "n": torch.tensor(7)}
    assert torch.equal(interpolate(pretrained, tuned, 1.0)["w"], tuned["w"])
    assert torch.equal(interpolate(pretrained, tuned, 0.0)["w"], pretrained["w"])
    half = interpolate(pretrained, tuned, 0.5)
    assert torch.allclose(half["w"], torch.tensor([0.5, 1.0, 2.0])) and int(half["n"]) == 7
    with pytest.raises(ValueError, match="interpolation weight"):
        interpolate(pretrained, tuned, 1.5)


def test_weight_average_is_a_plain_mean_first_then_forgets_old_weights() -> None:
    param = torch.nn.Parameter(torch.zeros(2))
    averaged: list[torch.Tensor] = []
    for count, value in enumerate([0.0, 2.0, 4.0]):
        param.data.fill_(value)
        averaged = update_average(averaged, [param], count, horizon=10.0)
    assert torch.allclose(averaged[0], torch.full((2,), 2.0))  # the mean of 0, 2, 4
    for count in range(3, 200):
        param.data.fill_(10.0)
        averaged = update_average(averaged, [param], count, horizon=10.0)
    assert torch.allclose(averaged[0], torch.full((2,), 10.0), atol=1e-3)  # horizon 10: the old weights are gone
    assert averaged[0] is not param.data


def test_options_go_down_from_the_candidate_alone_then_with_the_gate() -> None:
    asked = []

    def drop(option: Option) -> float:  # forgetting grows with the weight; the gate halves it
        asked.append(option)
        return max(0.0, option.weight - 0.5) / (2 if option.fallback else 1)

    option, drops = choose_option(0.9, drop, max_forgetting=0.16)
    assert option == Option(0.8, True) and set(drops) == set(asked)
    assert asked == [Option(0.9), Option(0.9, True), Option(0.8), Option(0.8, True)]
    assert choose_option(1.0, drop, max_forgetting=1.0)[0] == Option(1.0)  # "domain only": the candidate stands
    # Nothing fits: the lowest estimate is installed, not the last option tried.
    least, tried = choose_option(1.0, lambda o: 0.05 if o == Option(0.9, True) else 0.5, max_forgetting=0.03)
    assert least == Option(0.9, True) and len(tried) == 2 * len(WEIGHTS)
    # Out of time: the search stops after the option it is on, with the lowest estimate so far.
    asked.clear()
    clock = iter([False, False, True])
    best, tried = choose_option(1.0, drop, max_forgetting=0.01, out_of_time=lambda: next(clock))
    assert asked == [Option(1.0), Option(1.0, True), Option(0.9)] and best == Option(1.0, True)
    # Where the gate reads the held-out images as well as the network alone, it is tried first.
    asked.clear()
    option, _ = choose_option(0.9, drop, max_forgetting=0.3, gate_first=lambda w: w == 0.9)
    assert option == Option(0.9, True) and asked == [Option(0.9, True)]
    asked.clear()
    assert choose_option(0.9, drop, 0.16, gate_first=lambda w: w == 0.8)[0] == Option(0.8, True)
    assert asked == [Option(0.9), Option(0.9, True), Option(0.8, True)]


def test_without_the_gate_only_the_network_alone_is_tried_and_the_other_way_round() -> None:
    asked = []

    def drop(option: Option) -> float:
        asked.append(option)
        return option.weight / 10

    option, _ = choose_option(1.0, drop, max_forgetting=0.085, gate_first=lambda w: True, gate=False)
    assert option == Option(0.8) and asked == [Option(1.0), Option(0.9), Option(0.8)]
    asked.clear()  # and without the network alone, only the gated pair (the rendered probe's rule)
    option, _ = choose_option(1.0, drop, max_forgetting=0.085, gate_first=lambda w: False, alone=False)
    assert option == Option(0.8, True) and asked == [Option(1.0, True), Option(0.9, True), Option(0.8, True)]


def test_the_forgetting_estimate_is_an_upper_bound() -> None:
    # Nothing lost on 300 lines still leaves room for what the probe did not see; more lost, a larger bound.
    assert upper_drop(0, 0, 300) == pytest.approx(UPPER_Z / 300)
    assert upper_drop(15, 0, 300) == pytest.approx(0.05 + UPPER_Z * (0.05 * 0.95 / 300) ** 0.5)
    assert upper_drop(15, 0, 300) > upper_drop(15, 5, 300) > (15 - 5) / 300  # gains offset losses, paired
    assert upper_drop(0, 0, 0) == 0.0
    # The rendered probe's estimate is the bound on its lost lines less the floor at which real words show none.
    probe = ForgettingProbe.__new__(ForgettingProbe)
    probe.zero_shot, probe.real = ["ab", "cd", "ef", "gh"], False
    probe.scorer = Scorer([], ["ab", "cd", "ef", "gh"], load_model("english_g2"), None, CHARSET)
    assert probe.estimate(["ab", "cd", "ef", "xx"]) == pytest.approx(upper_drop(1, 0, 4) - PROBE_FLOOR)
    # Nothing lost of 300 lines: never below the drop the rendered probe can vouch for.
    words = [f"w{i}" for i in range(300)]
    large = ForgettingProbe.__new__(ForgettingProbe)
    large.zero_shot, large.real = words, False
    large.scorer = Scorer([], words, probe.scorer.base, None, CHARSET)
    assert upper_drop(0, 0, 300) - PROBE_FLOOR < PROBE_RESOLUTION
    assert large.estimate(words) == PROBE_RESOLUTION
    probe.real = True
    assert probe.estimate(["ab", "cd", "ef", "xx"]) == pytest.approx(upper_drop(1, 0, 4))


def test_a_gated_estimate_is_at_least_the_leak_share_of_the_networks_own() -> None:
    assert gated_drop(0.0, 0.10, 0.5) == pytest.approx(GATE_LEAK[0.5] * 0.10)
    assert gated_drop(0.05, 0.10, 0.5) == 0.05  # the probe through the gate already shows more
    assert gated_drop(0.0, 0.0, 0.5) == 0.0
    # A stricter gate lets fewer real words through: a lower floor.
    assert gated_drop(0.0, 0.10, CUT_GATE_THRESHOLD) < gated_drop(0.0, 0.10, GATE_THRESHOLD)
    assert set(GATE_LEAK) == {GATE_THRESHOLD, CUT_GATE_THRESHOLD}
    # Thresholds between or outside the measured ones take the nearer looser share: never a lower floor.
    assert gate_leak(0.95) == GATE_LEAK[CUT_GATE_THRESHOLD] and gate_leak(0.7) == GATE_LEAK[GATE_THRESHOLD]
    assert gate_leak(0.2) == max(GATE_LEAK.values())


def test_a_gated_pair_keeps_its_own_readings_inside_the_domain_only() -> None:
    own = [Result("A", 0.2), Result("B", 0.99), Result("C", 0.5)]
    other = [Result("x", 1.0), Result("y", 0.1), Result("z", 0.4)]
    assert [r.text for r in routed(own, other, np.array([True, False, True]))] == ["A", "y", "C"]
    # With a gate's override margin, a line outside keeps its own reading only when surer by more than the margin.
    gate = DomainGate(np.zeros(2), np.ones(2), np.zeros(2), 0.0, 0.5, 0.5)
    own = [Result("A", 0.99), Result("B", 0.99), Result("C", 0.7), Result("", 1.0)]
    other = [Result("x", 0.3), Result("y", 0.6), Result("z", 0.1), Result("w", 0.1)]
    outside = np.array([False, False, False, False])
    assert [r.text for r in routed(own, other, outside, gate)] == ["A", "y", "C", "w"]  # never an empty reading
    assert [r.text for r in routed(own, other, outside)] == ["x", "y", "z", "w"]


def _plate_like(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Wide, light-on-dark images of bars and blobs: visibly not rendered words."""
    images = []
    for _ in range(count):
        image = np.full((60, 150), int(rng.integers(20, 70)), np.uint8)
        for x in range(8, 140, 20):
            image[10:50, x:x + int(rng.integers(4, 10))] = int(rng.integers(180, 250))
        images.append(image)
    return images


def test_a_gate_keeps_images_like_its_domain_and_turns_general_words_away(loaded_model) -> None:
    rng = np.random.default_rng(0)
    fonts = find_fonts(PROBE_CHARS)
    gate = fit_gate(loaded_model.network, loaded_model, _plate_like(rng, 30), gate_general_set(fonts, 60))
    charset = loaded_model.charset
    new_domain = Scorer(_plate_like(rng, 20), [""] * 20, loaded_model, None, charset)
    probe_images, probe_labels = hard_general_set(fonts, count=40)  # the probe: words the gate never saw
    probe = Scorer(probe_images, probe_labels, loaded_model, None, charset)
    assert gate.threshold == GATE_THRESHOLD == 0.5
    assert gate.in_domain(new_domain.features(loaded_model.network)).mean() >= 0.9
    probe_features = probe.features(loaded_model.network)
    assert gate.in_domain(probe_features).mean() <= 0.1
    # For a network that cuts rows the gate is stricter: it keeps a line only at p >= 0.9.
    cutting = replace(loaded_model, row_crop=0.1)
    strict = fit_gate(loaded_model.network, cutting, _plate_like(rng, 30), gate_general_set(fonts, 60))
    assert strict.threshold == CUT_GATE_THRESHOLD == 0.9
    # p = sigmoid(1) = 0.73 for every line: outside the strict gate, inside the usual one.
    middling = replace(strict, coef=np.zeros_like(strict.coef), intercept=1.0)
    assert not middling.in_domain(probe_features).any()
    assert replace(middling, threshold=GATE_THRESHOLD).in_domain(probe_features).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        replace(strict, threshold=1.0)
    assert gate.override_margin == strict.override_margin == OVERRIDE_MARGIN
    with pytest.raises(ValueError, match="override margin"):
        replace(strict, override_margin=1.0)
    assert gate_threshold(-0.1) == GATE_THRESHOLD  # edge rows added: general words keep their tops


def test_a_gate_on_ppocrv6_features_tells_the_domain_from_general_words() -> None:
    model = load_model("ppocrv6_small")
    rng = np.random.default_rng(0)
    fonts = find_fonts(PROBE_CHARS)
    gate = fit_gate(model.network, model, _plate_like(rng, 30), gate_general_set(fonts, 60))
    assert gate.mean.shape == (2 * 384,)  # mean and spread of the encoder's input frames
    new_domain = Scorer(_plate_like(rng, 20), [""] * 20, model, None, model.charset)
    probe_images, probe_labels = hard_general_set(fonts, count=40)
    probe = Scorer(probe_images, probe_labels, model, None, model.charset)
    assert gate.in_domain(new_domain.features(model.network)).mean() >= 0.9
    assert gate.in_domain(probe.features(model.network)).mean() <= 0.1


def test_forgetting_probe_is_fixed_and_damaged() -> None:
    fonts = find_fonts(PROBE_CHARS)
    images, labels = hard_general_set(fonts, count=20)
    again, labels_again = hard_general_set(fonts, count=20)
    assert labels == labels_again and all(np.array_equal(a, b) for a, b in zip(images, again))
    assert all(im.dtype == np.uint8 and im.ndim == 2 and im.size for im in images)
    # Both polarities: some lines are light text on a dark background.
    dark = [float(np.median(im)) < 128 for im in images]
    assert any(dark) and not all(dark)


def test_unlabelled_images_from_a_folder_or_a_labelled_set(tmp_path: Path) -> None:
    folder = tmp_path / "unlabelled"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        shutil.copy(EXAMPLES / "images" / f"0{i}.png", folder / "sub" / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    warnings = []
    images = load_unlabelled(folder, warn=warnings.append)
    assert [im.name for im in images] == ["sub/0.png", "sub/1.png", "sub/2.png"]
    assert all(im.label == "" for im in images)
    assert "broken.png" in warnings[0]
    assert len(load_unlabelled(EXAMPLES)) == 8  # a labelled set: its labels are ignored
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no readable images"):
        load_unlabelled(tmp_path / "empty")


def test_folds_cover_every_sample_once_stratified_and_seeded() -> None:
    samples = [LabelledImage(str(i), np.zeros((4, 4), np.uint8), "x" * (1 + i % 4)) for i in range(80)]
    folds = split_folds(samples, 4, seed=3)
    assert sorted(i for fold in folds for i in fold) == list(range(80))
    assert all(sorted(len(samples[i].label) for i in fold) == sorted([1, 2, 3, 4] * 5) for fold in folds)
    assert split_folds(samples, 4, seed=3) == folds and split_folds(samples, 4, seed=4) != folds
    with pytest.raises(ValueError, match="--folds"):
        split_folds(samples, 1, seed=0)


def test_tiny_cross_validated_run(tmp_path: Path) -> None:
    data = copy_examples(tmp_path)
    out = tmp_path / "models" / "cv"
    report = run_adapt(tiny_config(data, out, folds=2, force=True), progress=False)
    folds = report["holdout"]["folds"]
    assert report["holdout"]["n"] == 8 == sum(f["n"] for f in folds) and len(folds) == 2
    assert all(f["train"] == 4 for f in folds)
    assert report["installed"] and load_model("cv", directory=tmp_path / "models").name == "cv"
    assert "Cross-validated" in (out / "report.md").read_text()


def test_tiny_run_writes_a_loadable_checkpoint_and_report(tmp_path: Path) -> None:
    data = copy_examples(tmp_path)
    out = tmp_path / "models" / "mine"
    report = run_adapt(tiny_config(data, out, force=True, preview=True), progress=False)
    assert report["installed"] and report["holdout"]["n"] == 2 and report["data"]["train"] == 8
    for name in ("model.pt", "report.json", "report.md", "learning_curve.png", "preview.png"):
        assert (out / name).is_file(), name
    assert (out / "cache").is_dir() and list((out / "cache").rglob("data.mdb"))
    loaded = load_model("mine", directory=tmp_path / "models")
    provenance = loaded.metadata["provenance"]
    assert provenance["base_model"] == "english_g2" and len(provenance["training_data_sha256"]) == 64
    assert "holdout" in loaded.metadata["metrics"]
    assert json.loads((out / "report.json").read_text())["training"]["steps"] == 3
    assert "held-out" in (out / "report.md").read_text()
    selection = report["selection"]
    assert selection["weight"] in WEIGHTS and selection["weight"] <= selection["candidate"]
    assert loaded.metadata["provenance"]["interpolation_weight"] == report["selection"]["weight"]
    assert report["general"]["n"] == 300 and "estimated_drop" in report["general"]


def test_domain_only_installs_the_network_alone(tmp_path: Path) -> None:
    data = copy_examples(tmp_path)
    report = run_adapt(tiny_config(data, tmp_path / "m", force=True, max_forgetting=1.0), progress=False)
    assert report["selection"]["fallback"] is False and "gate" not in report["selection"]
    assert load_model("m", directory=tmp_path).fallback is None


@pytest.mark.parametrize(("min_confidence", "pseudo_from"),
                         [(0.0, "final"), (1.5, "final"), (0.0, "selection"), (0.0, "both")])
def test_tiny_run_with_unlabelled_images_self_trains(
    tmp_path: Path, min_confidence: float, pseudo_from: str, monkeypatch
) -> None:
    data = copy_examples(tmp_path)
    out = tmp_path / "models" / "self"
    gate_domains: list[int] = []

    def recording_fit_gate(network, base, domain, general):
        gate_domains.append(len(domain))
        return fit_gate(network, base, domain, general)

    monkeypatch.setattr(adapt_options, "fit_gate", recording_fit_gate)
    pseudo_per_fit: list[int] = []
    real_fit = adapt_job.fit_network

    def recording_fit(*args, extra=(), **kwargs):
        pseudo_per_fit.append(len(extra))
        return real_fit(*args, extra=extra, **kwargs)

    monkeypatch.setattr(adapt_job, "fit_network", recording_fit)
    report = run_adapt(tiny_config(data, out, force=True, unlabeled=EXAMPLES, pseudo_confidence=min_confidence,
                                   pseudo_from=pseudo_from, max_minutes=10.0), progress=False)  # steps end fits
    st = report["self_training"]
    assert st["read"] == 8
    assert st["read_by"] == pseudo_from
    assert 0 < st["kept"] <= 8 if min_confidence < 1 else st["kept"] == 0
    # Both halves of the final fit run (3 steps each), also when no reading is confident enough to keep; read by
    # the selection fit only, the pseudo-labels join a single final fit.
    assert report["training"]["steps"] == (3 if pseudo_from == "selection" else 6)
    # Which fits trained on pseudo-labels: the selection fit never; the final fit, or its halves, as ordered.
    kept, first = st["kept"], st.get("kept_by_selection")
    assert pseudo_per_fit == {"selection": [0, kept], "final": [0, 0, kept], "both": [0, first, kept]}[pseudo_from]
    if pseudo_from == "both":  # the selection fit's readings trained the first half, the first half's the second
        assert first > 0
        assert f"selection fit's {first} pseudo-labels" in (out / "report.md").read_text()
    assert "Self-training" in (out / "report.md").read_text()
    # Every pseudo-label is listed for the user to check: an unlabelled image's name, its reading, its confidence.
    rows = [line.split("\t") for line in (out / st["file"]).read_text().splitlines()[1:]]
    assert len(rows) == st["kept"]
    names = {line.split("\t")[0] for line in (EXAMPLES / "gt.tsv").read_text().splitlines()}
    assert all(name in names and text.strip() and float(c) >= min_confidence for name, text, c in rows)
    # Every gate, the installed one included, is fitted on labelled images (and one augmented copy each) only.
    assert gate_domains and max(gate_domains) == 2 * 8


def test_reading_cost_is_counted_in_columns_not_images() -> None:
    model = load_model("english_g2")
    short, long = np.zeros((32, 64), np.uint8), np.zeros((32, 640), np.uint8)
    scorer = Scorer([short, long], ["", ""], model, None, CHARSET)
    assert scorer.columns == columns([short, long], model.input_height) == (64 + 640) * model.input_height // 32
    assert columns([long], model.input_height) == 10 * columns([short], model.input_height)


def test_long_lines_get_fewer_lines_per_training_batch() -> None:
    plates = [np.zeros((32, 64), np.uint8)] * 5  # 128 columns at height 64
    receipts = [np.zeros((32, 120), np.uint8)] * 5  # 240 columns
    very_long = [np.zeros((20, 800), np.uint8)]
    assert batch_size_for(plates, 64, 16) == 16
    assert MIN_BATCH < batch_size_for(receipts, 64, 16) == round(BATCH_COLUMNS / 240) < 16
    assert batch_size_for(very_long, 64, 16) == MIN_BATCH
    assert batch_size_for(very_long, 64, 4) == 4  # never more than asked for


def test_report_says_when_held_out_images_are_too_few_to_tell(tmp_path: Path) -> None:
    data = copy_examples(tmp_path)
    report = run_adapt(tiny_config(data, tmp_path / "m", force=True), progress=False)
    report = {**report, "better": True, "installed": True,
              "holdout": {**report["holdout"], "paired": compare_paired(["a", "x"], ["a", "b"], ["a", "b"], 0)}}
    text = render_markdown(report)
    assert "too few to tell" in text and "--folds 4" in text and "McNemar p = 1" in text
    # A gated model's report names its gate's threshold and the leak floor that goes with it.
    gated = {**report, "selection": {**report["selection"], "fallback": True, "gate": {
        "held_out_kept": 1.0, "probe_kept": 0.0, "threshold": CUT_GATE_THRESHOLD, "override_margin": 0.2}}}
    text = render_markdown(gated)
    assert "domain probability under 0.9 to the pretrained" in text
    assert "unless the adapted reading's confidence is higher by more than 0.2" in text
    assert f"at least {100 * GATE_LEAK[CUT_GATE_THRESHOLD]:.0f}% of the network's own estimate" in text


def test_label_case_is_detected_only_when_every_letter_agrees() -> None:
    alphabet = ENGLISH_G2_ALPHABET
    assert label_case(["TOTAL (RM) :", "12.00", "QTY"], alphabet) == "upper"
    assert label_case(["total", "4 kg"], alphabet) == "lower"
    assert label_case(["Total", "QTY"], alphabet) is None
    assert label_case(["12.00", "3"], alphabet) is None  # no letters: nothing to fold
    assert label_case(["ABC"], "ABC") is None  # the alphabet has no lower case to fold


def test_upper_case_labels_give_a_case_folding_model(tmp_path: Path) -> None:
    data = copy_examples(tmp_path)
    gt = data / "gt.tsv"
    rows = [line.split("\t") for line in gt.read_text(encoding="utf-8").splitlines()]
    gt.write_text("".join(f"{name}\t{label.upper()}\n" for name, label in rows), encoding="utf-8")
    out = tmp_path / "models" / "caps"
    run_adapt(tiny_config(data, out, force=True), progress=False)
    loaded = load_model("caps", directory=tmp_path / "models")
    assert loaded.charset.case == "upper"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "written upper-case" in report and "case-folded" in report
    texts = [r.text for r in Recognizer(loaded, device="cpu", precision="fp32").recognize(
        [(EXAMPLES / "images" / f"0{i}.png").read_bytes() for i in range(8)])]
    assert any(t.strip() for t in texts) and all(t == t.upper() for t in texts)
    kept = tmp_path / "models" / "kept"
    run_adapt(tiny_config(data, kept, force=True, case="keep"), progress=False)
    assert load_model("kept", directory=tmp_path / "models").charset.case is None
    assert "Letter case is learnt from the labels." in (kept / "report.md").read_text(encoding="utf-8")


def test_same_seed_same_weights(tmp_path: Path) -> None:
    data = copy_examples(tmp_path)
    digests = []
    for run in ("a", "b"):
        run_adapt(tiny_config(data, tmp_path / run, force=True), progress=False)
        digests.append(torch.load(tmp_path / run / "model.pt", weights_only=True)["weights_sha256"])
    assert digests[0] == digests[1]


def test_interrupted_run_leaves_the_previous_model_intact(tmp_path: Path, monkeypatch) -> None:
    data = copy_examples(tmp_path)
    out = tmp_path / "m"
    out.mkdir()
    (out / "model.pt").write_bytes(b"previous model")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(adapt_job, "fine_tune", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_adapt(tiny_config(data, out), progress=False)
    assert (out / "model.pt").read_bytes() == b"previous model"
    assert not list(out.glob(".*.tmp"))


def test_a_step_with_overflowing_gradients_is_skipped_not_taken(loaded_model) -> None:
    network = copy.deepcopy(loaded_model.network)
    line = to_gray(example_bytes(4))  # "recognition"
    calls = []

    def overflow_on_second_step(grad: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.full_like(grad, float("inf")) if len(calls) == 2 else grad

    network.Prediction.weight.requires_grad_(True)  # the shared model's copy may come frozen by a Recognizer
    network.Prediction.weight.register_hook(overflow_on_second_step)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    config = TrainConfig(max_steps=3, batch_size=2, warmup_steps=1, seconds=600, lr=1e-3)
    result = fine_tune(network, lambda rng: (line, "recognition"), lambda rng: (line, "recognition"), None,
                       loaded_model.charset, 64, loaded_model.normalization, config, progress=False)
    assert len(calls) == 3 and result.steps == 3
    assert all(torch.isfinite(v).all() for v in result.state.values() if v.is_floating_point())
    assert not torch.equal(result.state["Prediction.weight"], before["Prediction.weight"])  # steps 1 and 3 count
    # Overflowing on every step: no update is taken, and the learning curve has no loss to show (not a crash).
    always = copy.deepcopy(loaded_model.network)
    always.Prediction.weight.requires_grad_(True)
    always.Prediction.weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    result = fine_tune(always, lambda rng: (line, "recognition"), None, lambda net: (0.5, 0.5),
                       loaded_model.charset, 64, loaded_model.normalization,
                       replace(config, max_steps=2, eval_every=1), progress=False)
    assert [(p.step, p.loss) for p in result.curve] == [(0, None), (1, None), (2, None)]
    assert torch.equal(result.state["Prediction.weight"], before["Prediction.weight"])
    # Weights that end up non-finite anyway (here: an infinite learning rate) are refused with a clear error.
    with pytest.raises(TrainingDiverged, match="training diverged by step 1"):
        fine_tune(copy.deepcopy(loaded_model.network), lambda rng: (line, "recognition"), None, None,
                  loaded_model.charset, 64, loaded_model.normalization,
                  replace(config, max_steps=1, lr=float("inf")), progress=False)


def test_a_worse_model_is_not_installed_unless_forced(tmp_path: Path, monkeypatch) -> None:
    data = copy_examples(tmp_path)
    real_fine_tune = adapt_job.fine_tune

    def sabotaged(network, *args, **kwargs):
        result = real_fine_tune(network, *args, **kwargs)
        result.state = {k: (100 * torch.randn_like(v) if k.startswith("Prediction") else v)
                        for k, v in result.state.items()}
        return result

    monkeypatch.setattr(adapt_job, "fine_tune", sabotaged)
    out = tmp_path / "worse"
    # Half a minute: every option forgets too much, and the search tries them until the time is up.
    report = run_adapt(tiny_config(data, out, max_minutes=0.5), progress=False)
    assert not report["better"] and not report["installed"] and not (out / "model.pt").exists()
    assert "NOT better" in (out / "report.md").read_text()
    forced = run_adapt(tiny_config(data, out, force=True, max_minutes=0.5), progress=False)
    assert forced["installed"] and (out / "model.pt").is_file()


def _ink_blocks(image: np.ndarray) -> int:
    """Blocks of at least 4 columns that stand out from the background (light or dark ink)."""
    deviation = np.abs(image.astype(float) - np.median(image)).max(axis=0)
    marked = np.convolve(deviation > deviation.max() / 2, np.ones(5), "same") > 0  # bridge 1-2 column gaps
    edges = np.flatnonzero(np.diff(np.concatenate([[0], marked.astype(int), [0]])))
    return int(np.count_nonzero(edges[1::2] - edges[::2] >= 4))


@pytest.mark.parametrize("native_height", [16, 120])
def test_augmentation_never_cuts_off_the_ends_of_a_line(native_height: int) -> None:
    # A tightly cropped 20:1 line whose first and last "characters" touch the edges:
    # a transform that crops, rotates or shears them out of the frame would make its label wrong.
    width = native_height * 20
    line = np.full((native_height, width), 220, np.uint8)
    block = max(3, native_height // 2)
    for x in (0, width // 2, width - block):
        line[native_height // 5: native_height - native_height // 5, x: x + block] = 30
    augmenter = Augmenter(seed=0, height=64)
    for _ in range(150):
        out = augmenter(line)
        assert out.dtype == np.uint8 and 48 <= out.shape[0] <= 90
        assert _ink_blocks(out) == 3


def test_height_choice_follows_the_pretrained_cer_on_the_labelled_images() -> None:
    model = load_model("english_g2")
    samples = [s for s in open_dataset(EXAMPLES)]
    images, labels = [to_gray(s.image) for s in samples], [s.label for s in samples]
    height, cer = choose_height(model, images, labels, None, CHARSET)
    assert set(cer) == {model.input_height, 48}
    assert height == (48 if cer[48] <= cer[model.input_height] else model.input_height)


def test_framing_is_chosen_only_when_it_clearly_lowers_the_pretrained_cer(monkeypatch) -> None:
    model = load_model("english_g2")
    for unframed, framed, expected in ((0.50, {0.1: 0.43, -0.1: 0.60}, 0.1),
                                       (0.26, {0.1: 0.30, -0.1: 0.245}, -0.1),
                                       (0.14, {0.1: 0.20, -0.1: 0.14 * (1 - MIN_FRAMING_GAIN / 2)}, 0.0)):
        cers = {(64, 0.0): unframed, (48, 0.0): unframed + 0.1, **{(64, c): v for c, v in framed.items()}}
        monkeypatch.setattr(adapt_height, "_cer", lambda base, view, *a, _c=cers, **k: _c[(view.input_height,
                                                                                            view.row_crop)])
        view = choose_view(model, [], [], None, CHARSET)
        assert (view.height, view.row_crop) == (64, expected)
        assert set(view.framing_cer) == {0.0, *ROW_CROPS}
        given = choose_view(model, [], [], None, CHARSET, height=64, row_crop=0.1)
        assert (given.row_crop, given.framing_cer, given.height_cer) == (0.1, {}, {})


def test_run_with_framing_installs_a_model_whose_fallback_reads_the_whole_image(tmp_path: Path) -> None:
    out = tmp_path / "models" / "framed"
    report = run_adapt(tiny_config(copy_examples(tmp_path), out, force=True, height=64, row_crop=0.15),
                       progress=False)
    assert report["framing"] == {"row_crop": 0.15, "labelled_loose_cer": {}}
    assert "the top and bottom 15% of its rows cut" in (out / "report.md").read_text()
    assert load_checkpoint(out / "model.pt").row_crop == 0.15
    # A framed checkpoint with the pretrained fallback (this tiny run's search may end on a network alone).
    base = load_model("english_g2")
    path = save_checkpoint(tmp_path / "framed.pt", base.network, architecture="vgg_bilstm_ctc",
                           alphabet=base.charset.alphabet, input_height=64, normalization=base.normalization,
                           provenance={"name": "framed"}, fallback=base, row_crop=0.15)
    recognizer = Recognizer(load_checkpoint(path), precision="fp32")
    assert recognizer.fallback is not None and recognizer.fallback.model.row_crop == 0.0
    seen: dict[str, list[tuple[int, int]]] = {"own": [], "fallback": []}
    for name, rec in (("own", recognizer), ("fallback", recognizer.fallback)):
        run = rec._run

        def spy(images, *args, _run=run, _name=name, **kwargs):
            seen[_name] += [im.pixels.shape for im in images]
            return _run(images, *args, **kwargs)

        rec._run = spy  # type: ignore[method-assign]
    recognizer.gate = None  # route by confidence: every line below 2.0 is read by the fallback too
    recognizer.fallback_below = 2.0
    image = np.full((100, 300), 230, np.uint8)
    image[30:70, 20:280:40] = 20
    recognizer.recognize([image])
    assert seen["own"][0] == (64, 276)  # prepared at 92 rows (276 wide), the middle 64 of them
    assert seen["fallback"][0] == (64, 192)  # the whole image
    with pytest.raises(ValueError, match="--row-crop"):
        run_adapt(tiny_config(copy_examples(tmp_path / "x"), tmp_path / "bad", row_crop=0.4), progress=False)


def test_an_unknown_pseudo_label_order_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pseudo_from must be one of selection, final, both"):
        run_adapt(tiny_config(copy_examples(tmp_path / "x"), tmp_path / "bad", unlabeled=EXAMPLES,
                              pseudo_from="first"), progress=False)
    assert build_parser().parse_args(["adapt", "d", "--pseudo-from", "both"]).pseudo_from == "both"
    assert build_parser().parse_args(["adapt", "d"]).pseudo_from == "selection"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["adapt", "d", "--pseudo-from", "first"])


def test_tiny_run_adapts_ppocrv6_small(tmp_path: Path) -> None:
    out = tmp_path / "models" / "pp"
    # Unframed and within a minute: a framed network reads the probe's words badly even after 3 steps, and the
    # search then tries gated options down to w = 0.3 until the time is up.
    report = run_adapt(tiny_config(copy_examples(tmp_path), out, force=True, base_model="ppocrv6_small",
                                   row_crop=0.0, max_minutes=1.0), progress=False)
    assert report["base"]["model"] == "ppocrv6_small"
    # It reads 48-row lines only: no height is tried.
    assert report["height"] == {"rows": 48, "pretrained": 48, "labelled_cer": {}}
    loaded = load_checkpoint(out / "model.pt")
    assert loaded.metadata["architecture"] == "pplcnetv4_svtr_ctc" and loaded.input_height == 48
    assert loaded.metadata["provenance"]["base_model"] == "ppocrv6_small"
    recognizer = Recognizer(loaded, precision="fp32")
    if loaded.fallback is not None:  # the gate taps the encoder's input
        assert recognizer.fallback is not None and recognizer.fallback.model.name == "ppocrv6_small"
    image = to_gray((EXAMPLES / "images" / sorted(p.name for p in (EXAMPLES / "images").iterdir())[0]).read_bytes())
    assert isinstance(recognizer.recognize([image])[0].text, str)
    with pytest.raises(ValueError, match="48-row lines only"):
        run_adapt(tiny_config(copy_examples(tmp_path / "x"), tmp_path / "bad", base_model="ppocrv6_small",
                              height=64), progress=False)


def test_run_at_a_smaller_height_installs_a_model_whose_fallback_reads_at_its_own(tmp_path: Path) -> None:
    out = tmp_path / "models" / "h48"
    report = run_adapt(tiny_config(copy_examples(tmp_path), out, force=True, height=48), progress=False)
    assert report["height"] == {"rows": 48, "pretrained": 64, "labelled_cer": {}}
    assert "reads at 48 rows, the pretrained model at 64" in (out / "report.md").read_text()
    loaded = load_checkpoint(out / "model.pt")
    assert loaded.input_height == 48
    recognizer = Recognizer(loaded, precision="fp32")
    assert recognizer.fallback is not None and recognizer.fallback.input_height == 64
    # Images are prepared at the taller height; each network reads them at its own.
    heights: dict[str, set[int]] = {"own": set(), "fallback": set()}
    for name, rec in (("own", recognizer), ("fallback", recognizer.fallback)):
        run = rec._run

        def spy(images, *args, _run=run, _name=name, **kwargs):
            heights[_name].update(im.pixels.shape[0] for im in images)
            return _run(images, *args, **kwargs)

        rec._run = spy  # type: ignore[method-assign]
    recognizer.gate = None  # route by confidence: every line below 2.0 is read by the fallback too
    recognizer.fallback_below = 2.0
    image = to_gray((EXAMPLES / "images" / sorted(p.name for p in (EXAMPLES / "images").iterdir())[0]).read_bytes())
    assert recognizer.prepare(image).pixels.shape[0] == 64
    recognizer.recognize([image])
    assert heights == {"own": {48}, "fallback": {64}}
    with pytest.raises(ValueError, match="--height"):
        run_adapt(tiny_config(copy_examples(tmp_path / "x"), tmp_path / "bad", height=16), progress=False)
