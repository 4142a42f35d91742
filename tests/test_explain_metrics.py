"""tfsonify.explain metrics: brute-force deletion/insertion, models with a known answer, sanity checks, bad input."""
import numpy as np
import pytest
import tensorflow as tf

from explain_models import band_model, first_half_model, small_classifier
from tfsonify.explain.evaluate import evaluate, summary_table
from tfsonify.explain.methods import Explanation, explain
from tfsonify.explain.metrics import deletion_insertion, lmac_protocol, mixture_scores, si_sdr
from tfsonify.explain.sanity import cascading_randomisation
from tfsonify.explain.spectral import spectral_for
from tfsonify.explain.targets import Target


def _fake(like: Explanation, values: np.ndarray, method="fake") -> Explanation:
    return Explanation(method, "waveform", values.astype("float32"), like.inputs, like.index, like.target, like.spectral)


def test_deletion_insertion_equal_brute_force_loop():
    model = small_classifier(2)
    x = np.random.default_rng(3).standard_normal((2, 300)).astype("float32")
    spectral = spectral_for(8000, n_fft=32)
    e = explain("gradient", model, x, Target.unit(1), spectral=spectral)
    steps = 4
    curves = deletion_insertion(model, e, steps)
    relevance = np.abs(spectral.stft(e.values).numpy())
    spectrum = spectral.stft(x).numpy()
    for i in range(2):  # no softmax head: the curve is the logit over the clip's own logit
        probs = lambda w: model(w).numpy()[:, 1] / model(x[i : i + 1]).numpy()[0, 1]  # noqa: E731
        flat = relevance[i].ravel()
        order = sorted(range(flat.size), key=lambda j: (-flat[j], j))
        for k in range(steps + 1):
            top = order[: int(round(k / steps * flat.size))]
            keep = np.zeros(flat.size, bool)
            keep[top] = True
            keep = keep.reshape(relevance[i].shape)
            deleted = spectral.istft(tf.constant(spectrum[i : i + 1] * ~keep), 300)
            inserted = spectral.istft(tf.constant(spectrum[i : i + 1] * keep), 300)
            np.testing.assert_allclose(curves["deletion"][i, k], probs(deleted)[0], atol=1e-5)
            np.testing.assert_allclose(curves["insertion"][i, k], probs(inserted)[0], atol=1e-5)
    fr = np.arange(steps + 1) / steps
    np.testing.assert_allclose(curves["deletion_auc"], np.trapezoid(curves["deletion"], fr, axis=1), rtol=1e-6)


def test_first_half_model_metrics_rank_the_method_pointing_there():
    length = 800
    model = first_half_model(length)
    rng = np.random.default_rng(5)
    source = np.zeros((3, length), "float32")
    background = np.zeros((3, length), "float32")
    source[:, : length // 2] = rng.standard_normal((3, length // 2))
    background[:, length // 2 :] = rng.standard_normal((3, length // 2))
    x = source + background
    good = explain("gradient", model, x, Target.unit(0))
    assert np.all(good.values[:, length // 2 + 8 :] == 0)  # no gradient where the model does not look
    bad = _fake(good, background)  # points at the half the model ignores
    s_good, s_bad = mixture_scores(good, source, background), mixture_scores(bad, source, background)
    assert np.all(s_good["energy_share"] > s_bad["energy_share"])
    assert np.all(s_good["si_sdr_mask"] > s_bad["si_sdr_mask"])
    c_good, c_bad = deletion_insertion(model, good, 8), deletion_insertion(model, bad, 8)
    assert np.mean(c_good["insertion_minus_deletion"]) > np.mean(c_bad["insertion_minus_deletion"])


def test_band_model_metrics_rank_the_method_pointing_at_the_band():
    rate, length = 8000, 2000
    t = np.arange(length) / rate
    source = np.tile(np.sin(2 * np.pi * 1000 * t), (2, 1)).astype("float32")
    background = np.tile(0.8 * np.sin(2 * np.pi * 3000 * t + 0.3), (2, 1)).astype("float32")
    x = source + background
    model = band_model(1000.0, rate)
    good = explain("occlusion_band", model, x, Target.unit(0), bands=8)
    assert good.domain == "mask"
    wrong = good.values.copy()
    wrong = wrong[:, :, ::-1]  # the mask mirrored in frequency: the other band
    bad = Explanation("mirrored", "mask", np.ascontiguousarray(wrong), good.inputs, good.index, good.target, good.spectral)
    s_good, s_bad = mixture_scores(good, source, background), mixture_scores(bad, source, background)
    assert np.all(s_good["energy_share"] > 0.9) and np.all(s_bad["energy_share"] < 0.5)
    assert np.all(s_good["si_sdr_mask"] > s_bad["si_sdr_mask"] + 10)
    c_good, c_bad = deletion_insertion(model, good, 8), deletion_insertion(model, bad, 8)
    assert np.all(c_good["insertion_minus_deletion"] > c_bad["insertion_minus_deletion"])


def test_si_sdr_known_values():
    r = np.random.default_rng(0).standard_normal((1, 1000))
    n = np.random.default_rng(1).standard_normal((1, 1000))
    r, n = r - r.mean(), n - n.mean()
    n -= (n @ r.T) / (r @ r.T) * r  # orthogonal noise
    noisy = 3 * r + n * np.sqrt(9 * (r ** 2).sum() / (n ** 2).sum() / 10)  # 10 dB
    np.testing.assert_allclose(si_sdr(noisy, r), 10.0, atol=1e-6)


def test_lmac_protocol_and_randomisation():
    model = small_classifier(0)
    x = np.random.default_rng(4).standard_normal((3, 400)).astype("float32")
    e = explain("nmf", model, x, Target.unit("top"), components=3, iterations=30)
    scores = lmac_protocol(model, e)
    assert set(scores) == {"AI", "AD", "AG", "FF", "Fid-In"}
    assert np.all((scores["AI"] == 0) | (scores["AI"] == 100)) and np.all(scores["AD"] >= 0)
    before = [w.numpy().copy() for w in model.weights]
    check = cascading_randomisation(model, x, Target.unit(1), ["gradient", "guided_backprop"], stages=2)
    assert check["stages"] == ["logits", "hidden"]
    assert check["methods"]["gradient"]["spearman"].shape == (2, 3)
    assert np.all(check["methods"]["gradient"]["spearman"][-1] < 0.99)  # the gradient changes
    for w, value in zip(model.weights, before):  # restored
        np.testing.assert_array_equal(w.numpy(), value)


def test_evaluate_randomises_on_an_even_subset_and_times_each_phase():
    """The cascade re-explains ``randomisation_clips`` clips spread over the set: the same numbers as the cascade
    run on those clips alone; the conditions say how many and how long each phase took."""
    from tfsonify.explain.evaluate import randomisation_subset

    assert randomisation_subset(5, 2).tolist() == [0, 4] and randomisation_subset(5, 0).tolist() == [0, 1, 2, 3, 4]
    assert randomisation_subset(3, None).tolist() == [0, 1, 2] and randomisation_subset(100, 32).size == 32
    with pytest.raises(ValueError, match="randomisation_clips must be >= 0"):
        randomisation_subset(5, -1)
    model = small_classifier(0)
    x = np.random.default_rng(5).standard_normal((5, 400)).astype("float32")
    result, _ = evaluate(model, x, ["gradient"], ["deletion", "randomisation"], Target.unit(1), steps=4, stages=2,
                         randomisation_clips=2, log=lambda _: None)
    alone = cascading_randomisation(model, x[[0, 4]], Target.unit(1), ["gradient"], stages=2)
    np.testing.assert_allclose(result["randomisation"]["methods"]["gradient"]["spearman"],
                               alone["methods"]["gradient"]["spearman"].mean(axis=1), rtol=1e-5)
    assert result["conditions"]["randomisation_clips"] == 2
    assert result["methods"]["gradient"]["randomised_spearman"]["n"] == 2
    seconds = result["conditions"]["seconds"]
    assert set(seconds) == {"explain", "deletion", "randomisation"} and all(v > 0 for v in seconds.values())


def test_evaluate_table_and_json_fields():
    model = small_classifier(0)
    rng = np.random.default_rng(6)
    s, b = rng.standard_normal((3, 400)).astype("float32"), rng.standard_normal((3, 400)).astype("float32")
    result, ex = evaluate(model, s + b, ["gradient", "occlusion_band"], ["mixture", "deletion", "lmac", "cost"],
                          sources=s, backgrounds=b, steps=4, log=lambda m: None)
    table = summary_table(result)
    assert "| gradient |" in table and "energy in source" in table and "SI-SDR wave dB" in table
    assert result["methods"]["gradient"]["energy_share"]["n"] == 3
    assert "si_sdr_wave" not in result["methods"]["occlusion_band"]
    assert summary_table(result, "csv").splitlines()[0].startswith("method,energy_share_mean")
    page = summary_table(result, "html")
    assert page.startswith("<table") and "<td>gradient</td>" in page and "<th>energy in source</th>" in page
    assert page.count("<tr>") == 3 and "<script" not in page


def test_listening_examples_waveform_as_is_mask_applied_to_input():
    """Waveform explanations are played as they are, masks resynthesised on the input; each scaled to its peak."""
    from tfsonify.explain.evaluate import listening_examples
    from tfsonify.explain.spectral import soft_mask

    model = small_classifier(0)
    x = np.random.default_rng(8).standard_normal((3, 400)).astype("float32")
    wave = explain("gradient", model, x, Target.unit(1))
    sounds = listening_examples(wave, [2, 0], peak=[0.5, 2.0])
    assert sounds.shape == (2, 400) and sounds.dtype == np.float32
    np.testing.assert_allclose(np.abs(sounds).max(axis=1), [0.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(sounds[0], wave.values[2] * 0.5 / np.abs(wave.values[2]).max(), rtol=1e-5, atol=1e-7)
    mask = explain("occlusion_band", model, x, Target.unit(1), bands=4)
    heard = listening_examples(mask)
    expected = mask.spectral.apply_mask(mask.inputs[1:2], soft_mask(mask, mask.spectral)[1:2])[0]
    np.testing.assert_allclose(heard[1], expected * 0.9 / np.abs(expected).max(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------- bad input
def test_bad_input_is_a_clear_error_before_any_work(tmp_path):
    model = small_classifier(0)
    x = np.zeros((2, 400), "float32")
    with pytest.raises(ValueError, match="unknown method.*valid: sonification"):
        explain("lime", model, x, Target.unit(0))
    with pytest.raises(ValueError, match="unknown metric.*valid: mixture"):
        evaluate(model, x, ["gradient"], ["accuracy"])
    with pytest.raises(ValueError, match=r"unit index must be in 0\.\.2"):
        explain("gradient", model, x, Target.unit(3))
    with pytest.raises(ValueError, match=r"map of layer 'conv2' index must be in 0\.\.4"):
        explain("gradient", model, x, Target.map("conv2", 5))
    with pytest.raises(ValueError, match="shorter than layer"):
        explain("gradient", model, np.zeros((1, 10), "float32"), Target.unit(0))
    with pytest.raises(ValueError, match="source has 400 samples, background 399"):
        evaluate(model, x, ["gradient"], ["mixture"], sources=np.zeros((2, 400)), backgrounds=np.zeros((2, 399)))
    with pytest.raises(ValueError, match="needs a class target"):
        evaluate(model, x, ["gradient"], ["lmac"], Target.map("conv2", 0))
    frozen = small_classifier(1)
    frozen.trainable = False
    with pytest.raises(ValueError, match="no trainable weights"):
        evaluate(frozen, x, ["gradient"], ["randomisation"])


def test_cli_bad_names_write_nothing(tmp_path):
    from tfsonify.cli import main

    out = tmp_path / "out"
    for argv, needle in ((["--methods", "lime"], "unknown method"), (["--metrics", "acc"], "unknown metric")):
        assert main(["evaluate", "model.keras", str(tmp_path), "--out", str(out)] + argv) == 2
    assert not out.exists()


def test_cli_evaluate_end_to_end_on_a_saved_model(tmp_path, capsys):
    """``tfsonify evaluate`` in process on a saved CNN12 with a head and class names and a folder of WAVs: exit 0,
    faithfulness.json with every requested method and metric, the tables, the plots and the listening examples;
    a bad method name: exit 2, one line naming the valid methods, nothing written."""
    import json

    from tfsonify.cli import main
    from tfsonify.explain.methods import METHODS
    from tiny import saved_classifier, write_clips

    model = saved_classifier(tmp_path / "m.keras", 11)
    clips = write_clips(tmp_path / "clips", 12, ("a.wav", 4000, 440.0), {"b.wav": 4000, "c.wav": 4800})  # c: cut to 0.5 s
    out = tmp_path / "faith"
    methods = ["sonification", "gradient", "occlusion_band"]
    status = main(["evaluate", str(model), str(clips), "--methods", ",".join(methods), "--metrics",
                   "deletion,lmac,cost", "--steps", "4", "--seconds", "0.5", "--out", str(out)])
    assert status == 0
    result = json.loads((out / "faithfulness.json").read_text())
    assert list(result["methods"]) == methods and result["conditions"]["metrics"] == ["deletion", "lmac", "cost"]
    assert result["conditions"]["clips"] == 3 and result["conditions"]["samples"] == 4000
    assert result["conditions"]["target"] == "unit top"
    for method in methods:
        row = result["methods"][method]
        assert set(row) == {"deletion_auc", "insertion_auc", "insertion_minus_deletion", "AI", "AD", "AG", "FF",
                            "Fid-In", "seconds_per_clip"}
        assert row["deletion_auc"]["n"] == 3 and np.isfinite(row["insertion_auc"]["mean"])
        assert len(result["curves"][method]["deletion"]) == 5
        for k in (0, 1):
            assert (out / "examples" / f"clip{k}_{method}.wav").is_file()
    table = (out / "faithfulness.md").read_text()
    assert all(f"| {method} |" in table for method in methods) and "deletion AUC" in table and "Fid-In" in table
    assert len((out / "faithfulness.csv").read_text().splitlines()) == 1 + len(methods)
    assert (out / "curves.png").stat().st_size > 0 and (out / "bars.png").stat().st_size > 0
    assert "| gradient |" in capsys.readouterr().out

    bad = tmp_path / "bad"
    assert main(["evaluate", str(model), str(clips), "--methods", "gradient,saliency", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"tfsonify evaluate: error: unknown method(s) ['saliency']; valid: {', '.join(METHODS)} (or 'all')"
    assert not bad.exists()
