"""push_to_hub(..., report=...): the dataset card's "Quality check" section, through the fake Hub of test_hub."""

from __future__ import annotations

import json

import pytest

from hf_coreset import CoresetReport

from .test_hub import TOKEN, fake_hub, image_dataset, png_size, push  # noqa: F401  (fixtures)

pytest.importorskip("matplotlib")


def _report(method: str = "kcenter") -> CoresetReport:
    def runs(values, rows):
        return [{"seed": s, "rows": rows, "r_mean": v, "TR@1": v / 2, "train_s": 1.0} for s, v in enumerate(values)]

    return CoresetReport("dual_encoder", "r_mean", {"coreset": runs([14.0, 15.0, 16.0], 10),
                                                    "random": runs([9.0, 10.0, 11.0], 10),
                                                    "full": runs([30.0, 30.5, 31.0], 40)},
                         method=method, pool_rows=40, test_rows=20, steps=200, heads="mlp", batch_size=128)


@pytest.fixture(scope="module")
def coreset(image_dataset):  # noqa: F811
    import hf_coreset

    return hf_coreset.select_coreset(image_dataset, "kcenter", 10, embedding_columns=["emb"])


def test_push_with_a_report_adds_the_quality_section_figure_and_json(fake_hub, coreset):  # noqa: F811
    report = _report()
    push(coreset, "me/with-quality", report=report)

    files = fake_hub.files("me/with-quality")
    card = files["README.md"].decode()
    section = card[card.index("## Quality check"):card.index("## Score distribution")]
    assert "The coreset **beats random**: r_mean +5.00" in section
    assert "| coreset (kcenter) | 10 | 15.00 ± 1.00 | 7.50 |" in section
    assert "| full pool | 40 | 30.50 ± 0.50 |" in section
    assert "](images/coreset_quality.png)" in section and "](coreset_quality.json)" in section
    assert files["images/coreset_quality.png"].startswith(b"\x89PNG")
    assert min(png_size(files["images/coreset_quality.png"])) > 100
    assert CoresetReport.from_json(files["coreset_quality.json"].decode()) == report


def test_no_report_no_quality_section(coreset):  # noqa: F811
    from hf_coreset.integrations.hub import render_dataset_card

    card = render_dataset_card(coreset, "me/plain")
    assert "Quality check" not in card.text and "images/coreset_quality.png" not in card.images


def test_cli_select_evaluate_push_and_push_dir_carry_the_report(fake_hub, image_dataset, tmp_path,  # noqa: F811
                                                                monkeypatch):
    from hf_coreset.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    image_dataset.save_to_disk(str(tmp_path / "source"))
    out = tmp_path / "out"
    assert main(["select", str(tmp_path / "source"), "--method", "kcenter", "--budget", "6",
                 "--embedding-columns", "emb", "--output", str(out), "--no-progress", "--evaluate", "--test-size",
                 "10", "--proxy", "linear_probe", "--label-column", "category", "--eval-steps", "20",
                 "--push-to-hub", "me/evaluated"]) == 0

    pushed = fake_hub.files("me/evaluated")
    report = CoresetReport.from_json(pushed["coreset_quality.json"].decode())
    assert (report.proxy, report.metric, report.test_rows, report.coreset_rows) == ("linear_probe", "accuracy", 10, 6)
    assert report == CoresetReport.from_json((out / "report.json").read_text())
    assert "accuracy (mean ± std)" in pushed["README.md"].decode()

    assert main(["push", str(out), "me/evaluated-again"]) == 0  # the folder's report.json goes along
    again = fake_hub.files("me/evaluated-again")
    assert json.loads(again["coreset_quality.json"]) == json.loads(pushed["coreset_quality.json"])
