"""The performance benchmarks (``python -m benchmarks``) at tiny sizes on the tiny random Llama: every result has
its keys and positive numbers (timings are never asserted: they belong to the benchmark run, not the tests)."""

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: the benchmarks package
from benchmarks.__main__ import BENCHMARKS, main  # noqa: E402


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _positive(x):
    return _number(x) and x > 0


@pytest.fixture(scope="module")
def quick_results(tiny_dir, tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    out = tmp_path_factory.mktemp("bench")
    main(["--quick", "--backbone", str(tiny_dir), "--output", str(out), "--work-dir", str(out / "work")])
    return out


def test_every_benchmark_writes_json_and_markdown(quick_results):
    for name in BENCHMARKS:
        result = json.loads((quick_results / f"{name}.json").read_text())
        assert result["benchmark"] == name and (quick_results / f"{name}.md").read_text().strip()
        assert result["goals"] and all({"name", "goal", "measured", "met"} <= set(g) for g in result["goals"])
        # memory growth may be 0 or below at tiny sizes; every other measure is a rate or a ratio
        check = _number if name == "scale" else _positive
        assert all(check(g["measured"]) for g in result["goals"]), result["goals"]
        assert _positive(result["wall_s"]) and result["machine"]["cpus"] >= 1
    summary = (quick_results / "performance.md").read_text()
    assert all(f"`{name}`" in summary for name in BENCHMARKS)


def test_encode_and_train_step_ratios(quick_results):
    encode = json.loads((quick_results / "encode.json").read_text())
    assert set(encode["ratios"]) == {"encode_vs_bare", "sorted_vs_unsorted", "inference_mode_vs_no_grad",
                                     "threads_default_vs_1"}
    assert all(_positive(v) for v in encode["ratios"].values())
    assert all(_positive(v) for v in encode["texts_per_s"].values())
    step = json.loads((quick_results / "train_step.json").read_text())
    assert set(step["ratios"]) == {"text2token_vs_plain_time", "dense_kl_vs_sparse_time",
                                   "full_backward_vs_top_layers_time", "fp32_vs_bf16_autocast_speed",
                                   "uncached_vs_cached_speed", "fp32_vs_bf16_cached_speed", "fp32_vs_default_step_speed"}
    assert step["cache_rows_read"] > 0, "the cached sides read the frozen-layer cache"
    assert all(_positive(v) for v in step["ratios"].values()) and step["trainable_params"] < step["all_params"]


def test_precision_ratios_and_agreement(quick_results):
    result = json.loads((quick_results / "precision.json").read_text())
    assert set(result["ratios"]) == {"fp32_vs_bare_fp32", "bf16_vs_bare_fp32", "int8_vs_bare_fp32"}
    assert all(_positive(v) for v in result["ratios"].values())
    assert set(result["agreement"]) == {"bf16", "int8"}
    assert all(0 < a["cosine_min"] <= a["cosine_mean"] <= 1.0001 for a in result["agreement"].values())


def test_targets_st_and_scale(quick_results):
    targets = json.loads((quick_results / "targets.json").read_text())
    assert targets["data_driven"]["fast_tokenizer_ids_identical"] is True
    assert targets["data_driven"]["identical_to_original"] is True
    assert all(_positive(v) for v in targets["data_driven"]["texts_per_s"].values())
    assert _positive(targets["ratios"]["model_derived_vs_encode_throughput"])
    st = json.loads((quick_results / "st_encode.json").read_text())
    assert st["max_abs_diff"] <= 1e-4, "the exported model gives the same vectors"
    scale = json.loads((quick_results / "scale.json").read_text())
    for n, run in scale["runs"].items():
        assert run["texts"] == int(n) and run["train_steps"] == scale["steps"]
        for key in ("fit_s", "store_build_s", "train_s", "peak_rss_mb", "store_bytes_per_text"):
            assert _positive(run[key]), (n, key, run[key])
    assert scale["time_growth"]


def test_unknown_benchmark_is_refused():
    with pytest.raises(SystemExit):
        main(["--only", "nope"])


def test_goal_and_ratio_rows_helpers():
    from benchmarks.common import goal, ratio_rows

    assert goal("g", 14_500, 20_000)["met"] is False and goal("g", 14_500, 20_000)["goal"] == ">= 20,000"
    assert goal("g", 1.1, 1.3, "<=")["met"] is True and goal("g", 1.3, 1.3, "<")["met"] is False
    # the rounded value is shown, the exact one is tested
    assert goal("g", 0.9, 0.9, ">=", exact=0.8996)["met"] is False
    rows = ratio_rows({"a": 1.5, "b": 2.0}, {"b": "B", "a": "A"}, goals={"a": ">= 1"})
    assert rows == [["B", 2.0, ""], ["A", 1.5, ">= 1"]]
