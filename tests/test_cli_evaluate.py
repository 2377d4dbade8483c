"""`hf-coreset evaluate` and `hf-coreset select --evaluate`: the quality report from the command line."""

from __future__ import annotations

import json

import datasets
import pytest

from hf_coreset import CoresetReport, cli, get_selection_result

from .conftest import make_embedding_dataset

FEATURES = ["--embedding-columns", "img_emb,txt_emb", "--no-progress"]
CHEAP = ["--heads", "linear"]


def _run(argv):
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def source():
    return make_embedding_dataset(n_rows=120)


def test_select_evaluate_holds_out_rows_and_writes_the_report_beside_the_subset(source, tmp_path, capsys):
    source.save_to_disk(str(tmp_path / "src"))
    out = tmp_path / "out"
    argv = ["select", tmp_path / "src", "--method", "kcenter", "--budget", "10%", "--output", out, *FEATURES,
            "--evaluate", "--test-size", "0.25", "--eval-steps", "5", "--eval-seeds", "0,1", *CHEAP]

    assert _run(argv) == 0

    assert {"report.md", "report.json", "report.png", "holdout.json", "selection.json"} <= {
        p.name for p in out.iterdir()}
    holdout = json.loads((out / "holdout.json").read_text())
    assert len(holdout["test_rows"]) == 30 and len(holdout["pool_rows"]) == 90
    assert sorted(holdout["test_rows"] + holdout["pool_rows"]) == list(range(120))
    subset = datasets.load_from_disk(str(out))
    indices = get_selection_result(subset).indices
    assert subset.num_rows == 9  # 10 % of the 90-row pool
    # the subset's rows are pool rows, i.e. source rows outside the held-out part
    source_rows = sorted(holdout["pool_rows"][i] for i in indices)
    assert subset["caption"] == [source[r]["caption"] for r in source_rows]
    assert not set(source_rows) & set(holdout["test_rows"])

    report = CoresetReport.from_json((out / "report.json").read_text())
    assert (report.method, report.pool_rows, report.test_rows, report.seeds, report.steps) == (
        "kcenter", 90, 30, [0, 1], 5)
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr().out
    assert "| coreset (kcenter) | 9 |" in printed and "random subsets" in printed


def test_evaluate_a_select_output_against_a_test_set(source, tmp_path, capsys):
    split = source.train_test_split(test_size=30, seed=0)
    split["train"].save_to_disk(str(tmp_path / "pool"))
    split["test"].save_to_disk(str(tmp_path / "test"))
    out = tmp_path / "core"
    assert _run(["select", tmp_path / "pool", "--method", "herding", "--budget", "12", "--output", out,
                 *FEATURES]) == 0
    evaluate = ["evaluate", tmp_path / "pool", out, "--test", tmp_path / "test", *FEATURES, "--steps", "5",
                "--seeds", "0,1,2", *CHEAP]

    assert _run(evaluate) == 0
    report = CoresetReport.from_json((out / "report.json").read_text())
    assert (report.method, report.coreset_rows, report.test_rows, report.seeds) == ("herding", 12, 30, [0, 1, 2])
    assert (out / "report.md").read_text() == report.to_markdown()
    assert report.to_markdown() in capsys.readouterr().out

    assert _run(evaluate) == 2  # the report is there already
    assert "pass --overwrite" in capsys.readouterr().err
    assert _run([*evaluate, "--overwrite"]) == 0

    elsewhere = tmp_path / "elsewhere"
    assert _run(["evaluate", tmp_path / "pool", out / "selection.json", "--test", tmp_path / "test", *FEATURES,
                 "--steps", "5", "--baselines", "random", *CHEAP, "--output", elsewhere]) == 0
    again = CoresetReport.from_json((elsewhere / "report.json").read_text())
    assert sorted(again.runs) == ["coreset", "random"]
    assert again.runs["coreset"] == report.runs["coreset"] or again.summary("coreset") == report.summary("coreset")


def test_evaluate_refuses_the_pool_as_test_set_and_writes_nothing(source, tmp_path, capsys):
    source.save_to_disk(str(tmp_path / "pool"))
    out = tmp_path / "core"
    assert _run(["select", tmp_path / "pool", "--method", "random", "--budget", "10", "--output", out,
                 *FEATURES]) == 0

    code = _run(["evaluate", tmp_path / "pool", out, "--test", tmp_path / "pool", *FEATURES, "--steps", "5"])

    assert code == 2
    assert "test is the pool itself" in capsys.readouterr().err
    assert not (out / "report.json").exists()


def test_evaluate_needs_a_select_output(source, tmp_path, capsys):
    source.save_to_disk(str(tmp_path / "pool"))
    code = _run(["evaluate", tmp_path / "pool", tmp_path / "nothing", "--test", tmp_path / "pool", *FEATURES])
    assert code == 2
    assert "neither a `hf-coreset select` output folder nor a selection.json" in capsys.readouterr().err
