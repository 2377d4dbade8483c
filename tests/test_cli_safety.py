"""The command line never deletes what it did not write, swaps outputs atomically, checks the target before any
work, and ends every failure in one line (exit code 2) and Ctrl-C in "interrupted" (exit code 130)."""

from __future__ import annotations

import json
import os
import stat

import datasets
import pytest

from hf_coreset import cli, get_selection_result, outputs

from .conftest import make_embedding_dataset

SELECT = ["--method", "random", "--budget", "5", "--no-progress"]


@pytest.fixture
def source(tmp_path):
    """A save_to_disk folder of 30 rows under tmp_path/src."""
    make_embedding_dataset(n_rows=30).save_to_disk(str(tmp_path / "src"))
    return tmp_path / "src"


def run(argv, capsys=None):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hf-coreset: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---- 1. --overwrite replaces only an earlier hf-coreset output -------------------------------------------------


def test_overwrite_refuses_the_current_folder_and_its_parent(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    make_embedding_dataset(n_rows=30).remove_columns(["img_emb", "txt_emb"]).to_csv(str(work / "data.csv"))
    (work / "notes.txt").write_text("mine")
    before_work, before_tmp = snapshot(work), snapshot(tmp_path)
    monkeypatch.chdir(work)
    for target in (".", "..", str(work)):
        code, err = run(["select", "data.csv", *SELECT, "--output", target, "--overwrite"], capsys)
        assert_one_line_error(code, err, "Refusing --output")
        assert "current folder" in err
    assert snapshot(work) == before_work and snapshot(tmp_path) == before_tmp


def test_overwrite_refuses_the_source_its_parents_and_home(source, tmp_path, tmp_path_factory, monkeypatch, capsys):
    home = tmp_path_factory.mktemp("home")
    (home / "diary.txt").write_text("private")
    monkeypatch.setenv("HOME", str(home))
    before = snapshot(tmp_path)
    for target, reason in ((source, "the source"), (tmp_path, "a parent of the source"), (home, "home folder")):
        code, err = run(["select", source, *SELECT, "--output", target, "--overwrite"], capsys)
        assert_one_line_error(code, err, reason)
    assert snapshot(tmp_path) == before and (home / "diary.txt").read_text() == "private"


def test_overwrite_refuses_a_folder_hf_coreset_did_not_write(source, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    code, err = run(["select", source, *SELECT, "--output", mine, "--overwrite"], capsys)
    assert_one_line_error(code, err, "not an hf-coreset output")
    assert (mine / "thesis.tex").read_text() == "years of work"
    # A save_to_disk folder of the user (dataset_info.json but no selection.json) is not ours either.
    other = tmp_path / "other_dataset"
    make_embedding_dataset(n_rows=5).save_to_disk(str(other))
    before = snapshot(other)
    assert run(["select", source, *SELECT, "--output", other, "--overwrite"], capsys)[0] == 2
    assert snapshot(other) == before


def test_overwrite_refuses_an_earlier_output_the_user_added_files_to(source, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["select", source, *SELECT, "--output", out])[0] == 0
    (out / "my_notes.md").write_text("keep me")
    code, err = run(["select", source, *SELECT, "--output", out, "--overwrite"], capsys)
    assert_one_line_error(code, err, "did not write (my_notes.md)")
    assert (out / "my_notes.md").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_output(source, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["select", source, *SELECT, "--output", out, "--seed", "1"])[0] == 0
    code, err = run(["select", source, *SELECT, "--output", out, "--seed", "2"], capsys)
    assert_one_line_error(code, err, "exists; pass --overwrite")
    assert run(["select", source, *SELECT, "--output", out, "--seed", "2", "--overwrite"])[0] == 0
    assert get_selection_result(datasets.load_from_disk(str(out))).provenance["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no staging or aside folder left


# ---- 2. the swap is atomic ------------------------------------------------------------------------------------


def test_an_interrupt_during_the_swap_keeps_the_old_output(source, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert run(["select", source, *SELECT, "--output", out, "--seed", "1"])[0] == 0
    old = snapshot(out)
    real_rename, real_replace = os.rename, os.replace

    def interrupted_move(src, dst, *args, **kwargs):
        if os.fspath(dst) == str(out) and ".staging-" in os.fspath(src):  # the new output moving into place
            raise KeyboardInterrupt
        return (real_replace if kwargs.pop("_replace", False) else real_rename)(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", interrupted_move)
    monkeypatch.setattr(os, "replace", lambda src, dst: interrupted_move(src, dst, _replace=True))
    code, err = run(["select", source, *SELECT, "--output", out, "--seed", "2", "--overwrite"], capsys)
    assert code == 130 and err.strip() == "hf-coreset: interrupted"
    assert snapshot(out) == old  # the earlier output, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


# ---- 3. the target is checked before any work, folders get the umask --------------------------------------------


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the CLI starts loading the source (any check must come first)."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the source was loaded before the output was checked")

    monkeypatch.setattr(cli, "load_source", forbidden)


def test_output_problems_are_reported_before_any_work(tmp_path, no_work, monkeypatch, capsys):
    (tmp_path / "exists").mkdir()
    (tmp_path / "a_file").write_text("x")
    cases = [
        (tmp_path / "exists", [], "exists; pass --overwrite"),
        (tmp_path / "a_file", ["--overwrite"], "is a file, not a folder"),
        (tmp_path / "a_file" / "out", [], "is a file, not a folder"),
        (tmp_path / "out", ["--option", "seed=3"], "--option seed=... sets an argument of select_coreset"),
    ]
    for target, extra, message in cases:
        code, err = run(["select", "default", *SELECT, "--output", target, *extra], capsys)
        assert_one_line_error(code, err, message)
    # A folder the user cannot write to (simulated: the tests may run as root, whom permissions do not stop).
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: os.fspath(path) != str(tmp_path))
    code, err = run(["select", "default", *SELECT, "--output", tmp_path / "new"], capsys)
    assert_one_line_error(code, err, "is not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_is_refused_before_any_work(tmp_path, no_work, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, err = run(["select", "default", *SELECT, "--output", locked / "out"], capsys)
    finally:
        locked.chmod(stat.S_IRWXU)
    assert_one_line_error(code, err, "is not writable")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_output_folder_gets_the_users_umask(source, tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert run(["select", source, *SELECT, "--output", tmp_path / "out"])[0] == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask


# ---- 4. options that are select_coreset's own arguments --------------------------------------------------------


@pytest.mark.parametrize("option", ["batch_size=7", "seed=3", "on_error=raise"])
def test_an_option_naming_a_select_argument_is_refused(source, tmp_path, option, capsys):
    code, err = run(["select", source, *SELECT, "--output", tmp_path / "out", "--option", option], capsys)
    assert_one_line_error(code, err, f"--option {option.split('=')[0]}=... sets an argument of select_coreset")
    assert not (tmp_path / "out").exists()


# ---- 10. one-line errors, Ctrl-C ---------------------------------------------------------------------------------


def test_a_missing_path_or_an_empty_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cases = [(tmp_path / "nope" / "data.parquet", "does not exist"), (tmp_path / "nope.parquet", "does not exist"),
             (tmp_path / "empty", "is an empty folder")]
    for path, message in cases:
        code, err = run(["select", path, *SELECT, "--output", tmp_path / "out"], capsys)
        assert_one_line_error(code, err, message)


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(source, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("something deep\nbroke")

    monkeypatch.setattr(cli, "load_source", broken)
    argv = ["select", source, *SELECT, "--output", tmp_path / "out"]
    code, err = run(argv, capsys)
    assert_one_line_error(code, err, "RuntimeError: something deep broke", "HF_CORESET_DEBUG=1")
    monkeypatch.setenv("HF_CORESET_DEBUG", "1")
    with pytest.raises(RuntimeError):
        run(argv)


def test_ctrl_c_prints_interrupted_exits_130_and_leaves_nothing(source, tmp_path, monkeypatch, capsys):
    def interrupted_save(self, path, *args, **kwargs):
        (os.path.exists(path) and open(os.path.join(path, "data-00000-of-00001.arrow"), "wb").close())
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", interrupted_save)
    code, err = run(["select", source, *SELECT, "--output", tmp_path / "out"], capsys)
    assert code == 130 and err.strip() == "hf-coreset: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output, no staging folder


def test_selection_json_matches_the_saved_subset(source, tmp_path):
    assert run(["select", source, *SELECT, "--output", tmp_path / "out"])[0] == 0
    assert outputs.is_coreset_output(tmp_path / "out") and outputs.foreign_files(tmp_path / "out") == []
    selection = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert get_selection_result(datasets.load_from_disk(str(tmp_path / "out"))).indices.tolist() == \
        selection["indices"]
