"""The hf-coreset command line: select over each kind of source, atomic output, help."""

from __future__ import annotations

import json

import datasets
import pytest

from hf_coreset import cli, get_selection_result

from .conftest import make_embedding_dataset

COMMON = ["--method", "kcenter", "--budget", "10%", "--embedding-columns", "img_emb,txt_emb", "--no-progress"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_embedding_dataset(n_rows=100)


def _run(argv):
    return cli.main([str(a) for a in argv])


def _check_output(out, source):
    core = datasets.load_from_disk(str(out))
    selection = json.loads((out / "selection.json").read_text())
    assert core.num_rows == 10 and len(selection["indices"]) == 10
    assert selection["provenance"]["method"] == "kcenter"
    assert get_selection_result(core).indices.tolist() == selection["indices"]
    assert core["caption"] == [source[i]["caption"] for i in sorted(selection["indices"])]


def test_select_from_a_save_to_disk_folder(source, tmp_path):
    source.save_to_disk(str(tmp_path / "src"))
    assert _run(["select", tmp_path / "src", *COMMON, "--output", tmp_path / "out"]) == 0
    _check_output(tmp_path / "out", source)


def test_select_from_a_dataset_dict_folder_uses_the_split(source, tmp_path):
    datasets.DatasetDict({"train": source, "validation": source.select(range(20))}).save_to_disk(
        str(tmp_path / "src"))
    assert _run(["select", tmp_path / "src", *COMMON, "--output", tmp_path / "out"]) == 0
    _check_output(tmp_path / "out", source)
    assert _run(["select", tmp_path / "src", *COMMON, "--split", "nope", "--output", tmp_path / "o2"]) == 2


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_select_from_data_files(source, tmp_path, suffix):
    path = tmp_path / f"src{suffix}"
    if suffix == ".csv":  # CSV cannot hold vectors: select randomly instead
        source.remove_columns(["img_emb", "txt_emb"]).to_csv(str(path), index=False)
        argv = ["select", path, "--method", "random", "--budget", "7", "--output", tmp_path / "out"]
        assert _run(argv) == 0
        assert datasets.load_from_disk(str(tmp_path / "out")).num_rows == 7
        return
    (source.to_parquet if suffix == ".parquet" else source.to_json)(str(path))
    assert _run(["select", path, *COMMON, "--output", tmp_path / "out"]) == 0
    _check_output(tmp_path / "out", source)


def test_method_options_and_scores(source, tmp_path):
    argv = ["select", "x", "--method", "dq", "--budget", "0.1", "--embedding-columns", "img_emb,txt_emb",
            "--option", "num_bins=4", "--option", "reduce=pca:3", "--return-scores", "--seed", "3",
            "--output", tmp_path / "out", "--no-progress"]
    source.save_to_disk(str(tmp_path / "x"))
    argv[1] = tmp_path / "x"
    assert _run(argv) == 0
    core = datasets.load_from_disk(str(tmp_path / "out"))
    config = get_selection_result(core).provenance["config"]
    assert config == {"seed": 3, "aggregation": "concat", "reduce": "pca:3", "num_bins": 4, "graphcut_lambda": 1.0}
    assert "coreset_score" in core.column_names


def test_existing_output_is_refused_then_replaced_with_overwrite(source, tmp_path, capsys):
    source.save_to_disk(str(tmp_path / "src"))
    assert _run(["select", tmp_path / "src", *COMMON, "--output", tmp_path / "out", "--seed", "1"]) == 0
    assert _run(["select", tmp_path / "src", *COMMON, "--output", tmp_path / "out"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert _run(["select", tmp_path / "src", *COMMON, "--output", tmp_path / "out", "--overwrite"]) == 0
    _check_output(tmp_path / "out", source)
    # A folder hf-coreset did not write is never replaced (tests/test_cli_safety.py has every case).
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    assert _run(["select", tmp_path / "src", *COMMON, "--output", tmp_path / "mine", "--overwrite"]) == 2
    assert (tmp_path / "mine" / "keep.txt").read_text() == "mine"


def test_a_failed_selection_writes_nothing(source, tmp_path, capsys):
    source.save_to_disk(str(tmp_path / "src"))
    argv = ["select", tmp_path / "src", "--method", "kcenter", "--budget", "1000", "--embedding-columns",
            "img_emb", "--output", tmp_path / "out"]
    assert _run(argv) == 2
    assert "budget=1000 rows is out of range" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no staging folder left behind


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["select", "--help"])
    text = capsys.readouterr().out
    parser = cli.build_parser()
    select = parser._subparsers._group_actions[0].choices["select"]
    for action in select._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help, f"{action.dest} has no help text"


def test_methods_lists_options(capsys):
    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "dq" in out and "num_bins=20" in out and "kcenter" in out


@pytest.mark.parametrize("text, expected", [("500", 500), ("0.1", 0.1), ("10%", 0.1), ("1.0", 1.0)])
def test_parse_budget(text, expected):
    assert cli.parse_budget(text) == pytest.approx(expected)
    assert type(cli.parse_budget(text)) is type(expected)
