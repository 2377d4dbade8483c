"""hf-coreset: select a coreset of a dataset from the command line.

    hf-coreset select PATH --method dq --budget 0.1 --output out/
    hf-coreset select PATH --method dq --budget 0.1 --output out/ --push-to-hub me/my-coreset [--private]
    hf-coreset push out/ me/my-coreset [--private] [--exist-ok]
    hf-coreset select PATH --method dq --budget 0.1 --output out/ --evaluate     # + report.md/json/png
    hf-coreset evaluate POOL out/ --test TEST                                      # does it beat random?
    hf-coreset methods
    hf-coreset demo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from .errors import CoresetInputError
from .outputs import check_output_target, write_atomically

DATA_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
OFFLINE_IMAGE_ENCODER = "efficientnet-lite0"
OFFLINE_TEXT_ENCODER = "all-minilm-l6-v2"
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
# Ctrl-C: the shell's code for a process ended by SIGINT (128 + 2).
INTERRUPTED_EXIT_CODE = 130


def parse_budget(text: str) -> int | float:
    """``"500"`` -> 500 rows, ``"0.1"`` or ``"10%"`` -> a fraction of 0.1."""
    text = text.strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100.0
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        message = f"budget must be a row count, a fraction or a percentage, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as JSON when it parses (numbers, true/false, null), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option takes key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def load_source(source: str, split: str | None = None):
    """A ``datasets.Dataset`` from a ``save_to_disk`` folder, data files, an image folder, a Hub id, or
    ``default`` (the Open Clip Art sample shipped with hf_coreset)."""
    import datasets

    path = Path(source)
    if source == "default" and not path.exists():
        from .data import load_default_dataset

        return load_default_dataset()
    if not path.exists():
        if not looks_like_hub_id(source):
            raise CoresetInputError(
                f"{source} does not exist: pass a save_to_disk folder, a data file or folder (parquet, jsonl, "
                "csv), an image folder, a Hub dataset id (owner/name), or 'default'."
            )
        return _load_from_hub(source, split)
    if path.is_dir() and any((path / name).exists() for name in ("dataset_info.json", "dataset_dict.json")):
        return _pick_split(datasets.load_from_disk(source), split, source)
    if path.is_file():
        builder = DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise CoresetInputError(
                f"Cannot read {source!r}: known data file types are {sorted(DATA_FILE_BUILDERS)}."
            )
        return datasets.load_dataset(builder, data_files=source, split=split or "train")
    if next((p for p in path.rglob("*") if p.is_file()), None) is None:
        raise CoresetInputError(f"{source} is an empty folder: there is nothing to select from.")
    suffixes = {p.suffix.lower() for p in path.iterdir() if p.is_file()}
    builders = {DATA_FILE_BUILDERS[s] for s in suffixes if s in DATA_FILE_BUILDERS}
    if len(builders) == 1:
        return datasets.load_dataset(builders.pop(), data_dir=source, split=split or "train")
    return datasets.load_dataset("imagefolder", data_dir=source, split=split or "train")


def looks_like_hub_id(source: str) -> bool:
    """``owner/name`` or ``name`` (no path syntax, no data file suffix), and not a local path."""
    return (source != "default" and not Path(source).exists() and HUB_ID.fullmatch(source) is not None
            and Path(source).suffix.lower() not in DATA_FILE_BUILDERS)


def _load_from_hub(source: str, split: str | None):
    import datasets

    try:
        loaded = datasets.load_dataset(source, split=split)
    except (OSError, ConnectionError) as err:  # not found, offline, no network (the Hub errors are OSErrors)
        raise CoresetInputError(
            f"{source} is not a local path, and loading it as a Hub dataset failed ({_one_line(err)}). Check "
            "the path or the dataset id, and the network (HF_HUB_OFFLINE)."
        ) from err
    return _pick_split(loaded, split, source)


def _pick_split(loaded, split: str | None, source: str):
    import datasets

    if not isinstance(loaded, datasets.DatasetDict):
        return loaded
    split = split or ("train" if "train" in loaded else None)
    if split not in loaded:
        raise CoresetInputError(f"{source!r} has splits {list(loaded)}: choose one with --split.")
    return loaded[split]


def load_encoder(name: str, modality: str):
    """The offline demo encoders by name, or a transformers model from a local folder or Hub id."""
    from . import features

    if name == OFFLINE_IMAGE_ENCODER and modality == "image":
        return features.load_offline_image_encoder()
    if name == OFFLINE_TEXT_ENCODER and modality == "text":
        return features.load_offline_text_encoder()
    import transformers

    model = transformers.AutoModel.from_pretrained(name)
    if modality == "image":
        return features.TransformersImageEncoder(model, transformers.AutoProcessor.from_pretrained(name))
    return features.TransformersTextEncoder(model, transformers.AutoTokenizer.from_pretrained(name))


def build_encoders(args: argparse.Namespace) -> dict[str, Any]:
    """The encoders the --image-column / --text-column flags ask for (none with --embedding-columns)."""
    encoders = {}
    if not args.embedding_columns:
        if args.image_column:
            encoders["image_encoder"] = load_encoder(args.image_encoder, "image")
        if args.text_column:
            encoders["text_encoder"] = load_encoder(args.text_encoder, "text")
    return encoders


def cmd_select(args: argparse.Namespace) -> int:
    import datasets

    from .api import select_coreset
    from .result import get_selection_result

    # Everything about the output and the options is checked before minutes of encoding and selection.
    check_output_target(args.output, overwrite=args.overwrite, source=args.source)
    options = dict(args.option)
    check_method_options(options)
    if args.no_progress:
        datasets.disable_progress_bars()
    dataset = load_source(args.source, args.split)
    holdout = split_holdout(dataset, args.test_size, args.seed) if args.evaluate else None
    if holdout is not None:  # select on the pool only: the held-out rows score the report
        dataset = holdout.pool
    encoders = build_encoders(args)
    subset = select_coreset(
        dataset, args.method, args.budget,
        image_column=None if args.embedding_columns else args.image_column,
        text_column=None if args.embedding_columns else args.text_column,
        embedding_columns=args.embedding_columns, seed=args.seed, return_scores=args.return_scores,
        batch_size=args.batch_size, on_error=args.on_error, cache_dir=args.cache_dir,
        show_progress=not args.no_progress, **encoders, **options,
    )
    result = get_selection_result(subset)
    report = evaluate_holdout(subset, holdout, args, encoders) if holdout else None
    files = report_files(report, holdout) if report else {}  # rendered before anything is written
    write_atomically(subset, result.to_json(indent=2), args.output, overwrite=args.overwrite, source=args.source,
                     extra_files=files)
    dropped = {reason: info["count"] for reason, info in result.provenance["rows_dropped"].items()}
    print(f"{args.method}: kept {subset.num_rows} of {dataset.num_rows} rows"
          f"{f', dropped {dropped}' if dropped else ''} -> {args.output}")
    if report is not None:
        print(f"held out {len(holdout.test_rows)} rows to score the report (holdout.json)\n\n{report.to_markdown()}")
    if args.push_to_hub:
        source_id = args.source if looks_like_hub_id(args.source) else None
        return _push(subset, args.push_to_hub, args, source=dataset, source_id=source_id, report=report)
    return 0


def check_method_options(options: dict[str, Any]) -> None:
    """Refuse an ``--option`` that names an argument of ``select_coreset`` (it has its own flag)."""
    from .api import SELECT_CORESET_ARGUMENTS

    for key in options:
        if key in SELECT_CORESET_ARGUMENTS:
            raise CoresetInputError(
                f"--option {key}=... sets an argument of select_coreset, not a method option: use its own flag "
                f"(--{key.replace('_', '-')} or see `hf-coreset select --help`). Method options: `hf-coreset methods`."
            )


def _push(subset, repo_id: str, args: argparse.Namespace, **card_options: Any) -> int:
    """Push ``subset`` with hf_coreset.integrations.hub.push_to_hub; the token comes from HF_TOKEN or the login."""
    from huggingface_hub.errors import HfHubHTTPError

    from .integrations.hub import is_connection_error, push_to_hub

    try:
        commit = push_to_hub(
            subset, repo_id, private=args.private, exist_ok=args.exist_ok,
            revision=getattr(args, "revision", None), create_pr=getattr(args, "create_pr", False),
            commit_message=getattr(args, "commit_message", None),
            category_column=getattr(args, "category_column", None), **card_options,
        )
    except HfHubHTTPError as err:
        raise PushFailed(f"pushing to {repo_id} failed, nothing was committed: {_one_line(err)}") from err
    except Exception as err:
        if not is_connection_error(err):
            raise
        raise PushFailed(
            f"the connection to the Hub dropped while pushing to {repo_id} ({type(err).__name__}: "
            f"{_one_line(err)}). The push is one commit, so the repo holds all of it or none of it: check the "
            "repo, then run the same command again (with --exist-ok if the commit went through)."
        ) from err
    print(f"pushed {subset.num_rows} rows to {commit.pr_url or commit.commit_url}")
    return 0


class PushFailed(Exception):
    """A push to the Hub failed after the local checks passed (the server refused it, or the connection dropped)."""


def cmd_push(args: argparse.Namespace) -> int:
    import datasets

    folder = Path(args.folder)
    if not (folder / "dataset_info.json").exists():
        raise CoresetInputError(
            f"{folder} is not a `hf-coreset select` output folder (no dataset_info.json): pass the --output "
            "folder of `hf-coreset select`."
        )
    subset = datasets.load_from_disk(str(folder))
    return _push(subset, args.repo_id, args, source_id=args.source_id, report=saved_report(folder))


@dataclasses.dataclass
class Holdout:
    """The rows ``select --evaluate`` keeps out of the selection to score the report, as source row numbers."""

    pool: Any
    test: Any
    pool_rows: list[int]
    test_rows: list[int]
    seed: int

    def to_json(self) -> str:
        return json.dumps({"seed": self.seed, "pool_rows": self.pool_rows, "test_rows": self.test_rows,
                           "note": "selection.json indices are positions in pool_rows (the selection saw the "
                                   "pool only); test_rows scored the report."}, indent=1)


def split_holdout(dataset, test_size: int | float, seed: int) -> Holdout:
    """Hold out ``test_size`` rows (a count, or a fraction in (0, 1)) drawn with ``seed``; the rest is the pool."""
    import numpy as np

    from .validation import resolve_budget

    if isinstance(test_size, float) and test_size >= 1.0:
        raise CoresetInputError(f"--test-size must be a fraction below 1 or a row count, got {test_size}.")
    n_test = resolve_budget(test_size, dataset.num_rows)
    if n_test >= dataset.num_rows:
        raise CoresetInputError(f"--test-size {test_size} leaves no rows to select from ({dataset.num_rows} rows).")
    order = np.random.default_rng(seed).permutation(dataset.num_rows)
    test_rows, pool_rows = np.sort(order[:n_test]), np.sort(order[n_test:])
    return Holdout(pool=dataset.select(pool_rows), test=dataset.select(test_rows), pool_rows=pool_rows.tolist(),
                   test_rows=test_rows.tolist(), seed=seed)


def evaluation_options(args: argparse.Namespace) -> dict[str, Any]:
    """``evaluate_coreset`` keyword arguments from the evaluation flags."""
    return {"proxy": args.proxy, "label_column": args.label_column, "seeds": args.eval_seeds,
            "steps": args.eval_steps, "heads": args.heads, "show_progress": not args.no_progress}


def feature_options(args: argparse.Namespace, encoders: dict[str, Any]) -> dict[str, Any]:
    """The feature source of ``select`` / ``evaluate``: embedding columns, or columns with their encoders."""
    if args.embedding_columns:
        return {"embedding_columns": args.embedding_columns, "cache_dir": args.cache_dir}
    return {"image_column": args.image_column, "text_column": args.text_column, "cache_dir": args.cache_dir,
            **encoders}


def evaluate_holdout(subset, holdout: Holdout, args: argparse.Namespace, encoders: dict[str, Any]):
    """``select --evaluate``: the report of ``subset`` (selected from the pool) scored on the held-out rows.
    Held-out rows identical to pool rows (duplicates in the source) are left out of scoring and noted."""
    from .evaluation import evaluate_coreset

    return evaluate_coreset(holdout.pool, subset, test=holdout.test, duplicates="drop",
                            **feature_options(args, encoders), **evaluation_options(args))


def report_files(report, holdout: Holdout | None = None) -> dict[str, bytes]:
    """report.md / report.json / report.png (and holdout.json), rendered."""
    files = report.files()
    if holdout is not None:
        files["holdout.json"] = holdout.to_json().encode()
    return files


def write_files(folder: Path, files: dict[str, bytes], overwrite: bool = True) -> None:
    """Write ``files`` into ``folder``, each one replaced at once (written beside, then renamed into place)."""
    existing = [name for name in files if (folder / name).exists()]
    if existing and not overwrite:
        raise CoresetInputError(f"{folder} already holds {existing}; pass --overwrite to replace them.")
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        temporary = folder / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, folder / name)


def saved_report(folder: Path):
    """The CoresetReport in ``folder``/report.json (written by ``select --evaluate`` or ``evaluate``), or None."""
    from .evaluation import CoresetReport

    path = folder / "report.json"
    return CoresetReport.from_json(path.read_text()) if path.exists() else None


def load_coreset(path: str):
    """A `hf-coreset select` output folder (the subset with its selection) or a selection.json file."""
    import datasets

    from .result import SelectionResult

    location = Path(path)
    if location.is_file() and location.suffix == ".json":
        return SelectionResult.from_dict(json.loads(location.read_text()))
    if (location / "dataset_info.json").exists():
        return datasets.load_from_disk(str(location))
    raise CoresetInputError(
        f"{path} is neither a `hf-coreset select` output folder nor a selection.json file: pass the --output "
        "folder of `hf-coreset select` (or its selection.json)."
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    import datasets

    from .evaluation import evaluate_coreset

    if args.no_progress:
        datasets.disable_progress_bars()
    pool = load_source(args.pool, args.split)
    test = load_source(args.test, args.test_split)
    coreset = load_coreset(args.coreset)
    encoders = build_encoders(args)
    coreset_path = Path(args.coreset)
    output = Path(args.output) if args.output else coreset_path.parent if coreset_path.is_file() else coreset_path
    report = evaluate_coreset(pool, coreset, test=test, baselines=args.baselines, duplicates=args.duplicates,
                              id_column=args.id_column, **feature_options(args, encoders),
                              **evaluation_options(args))
    write_files(output, report_files(report), overwrite=args.overwrite)
    print(report.to_markdown())
    print(f"report.md, report.json, report.png -> {output}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .registry import available_methods, get_method

    for name in available_methods():
        spec = get_method(name)
        options = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(spec.config_class))
        print(f"{name:10s} {options}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(budget=args.budget, methods=args.methods)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-coreset", description=__doc__.split("\n")[0],
                                     epilog="Errors end in one line and exit code 2 (HF_CORESET_DEBUG=1 shows the "
                                            "traceback); Ctrl-C exits with 130.")
    commands = parser.add_subparsers(dest="command", required=True)

    select = commands.add_parser("select", help="select a coreset and save it with save_to_disk",
                                 description="Select a coreset of SOURCE and write it to --output "
                                             "(save_to_disk folder plus selection.json).")
    select.add_argument("source", help="a save_to_disk folder, a data file or folder (parquet/jsonl/csv), "
                                       "an image folder, a Hub dataset id, or 'default' (the shipped sample)")
    select.add_argument("--method", required=True, help="a registered method (see `hf-coreset methods`)")
    select.add_argument("--budget", required=True, type=parse_budget,
                        help="rows to keep: a count (500), a fraction (0.1) or a percentage (10%%)")
    select.add_argument("--output", required=True, help="folder to write; refused if it exists, see --overwrite")
    select.add_argument("--split", help="split to read when the source has several (default: train)")
    select.add_argument("--image-column", help="image column to encode (e.g. image)")
    select.add_argument("--text-column", help="text column to encode (e.g. caption)")
    select.add_argument("--embedding-columns", type=lambda s: s.split(","),
                        help="comma-separated columns of precomputed vectors, one per modality; skips encoding")
    select.add_argument("--image-encoder", default=OFFLINE_IMAGE_ENCODER,
                        help=f"'{OFFLINE_IMAGE_ENCODER}' (offline, needs the demo extra) or a transformers "
                             f"model folder / Hub id (default: %(default)s)")
    select.add_argument("--text-encoder", default=OFFLINE_TEXT_ENCODER,
                        help=f"'{OFFLINE_TEXT_ENCODER}' (offline, needs the demo extra) or a transformers "
                             f"model folder / Hub id (default: %(default)s)")
    select.add_argument("--seed", type=int, default=0, help="random seed; same seed, same rows (default: 0)")
    select.add_argument("--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="a method option, repeatable, e.g. --option num_bins=10 --option reduce=pca:64")
    select.add_argument("--return-scores", action="store_true",
                        help="add coreset_score and coreset_rank columns")
    select.add_argument("--batch-size", type=int, default=32, help="encoding batch size (default: 32)")
    select.add_argument("--on-error", choices=["report", "raise"], default="report",
                        help="unreadable images: drop and report them, or stop (default: report)")
    select.add_argument("--cache-dir", help="where encoded features are cached (default: datasets cache)")
    select.add_argument("--overwrite", action="store_true",
                        help="replace --output if it is an earlier hf-coreset output (selection.json and "
                             "dataset_info.json, no other files); any other folder is never deleted")
    select.add_argument("--no-progress", action="store_true", help="hide progress bars")
    select.add_argument("--push-to-hub", metavar="REPO",
                        help="after writing --output, push the coreset and its card to this Hub dataset repo "
                             "(token from HF_TOKEN or `hf auth login`)")
    _add_push_flags(select)
    select.add_argument("--evaluate", action="store_true",
                        help="hold out --test-size rows before selecting (a fractional --budget then applies to the "
                             "rest, the pool), then train a proxy on the coreset, on random subsets of the same size "
                             "and on the pool, score them on the held-out rows and write report.md / report.json / "
                             "report.png (and holdout.json) beside the subset")
    select.add_argument("--test-size", type=parse_budget, default=0.2,
                        help="with --evaluate: rows held out, a fraction (0.2), a percentage or a count "
                             "(default: 0.2)")
    _add_evaluation_flags(select, prefix="eval-")
    select.set_defaults(func=cmd_select)

    push = commands.add_parser("push", help="push a `select` output folder to the Hub with a dataset card",
                               description="Push the coreset saved in DIR (a `hf-coreset select` --output) to "
                                           "the Hub dataset repo REPO: parquet shards, README card and figures in "
                                           "one commit (with a Quality check section when DIR holds the "
                                           "report.json of `select --evaluate` or `evaluate`). The token comes "
                                           "from HF_TOKEN or `hf auth login`.")
    push.add_argument("folder", metavar="DIR", help="a `hf-coreset select` --output folder")
    push.add_argument("repo_id", metavar="REPO", help="the Hub dataset repo, namespace/name")
    _add_push_flags(push)
    push.add_argument("--revision", help="branch to commit to, created if missing (default: main)")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    push.add_argument("--commit-message", help="commit message (default: 'Upload <method> coreset (...)')")
    push.add_argument("--category-column", help="column plotted in the card's composition figure "
                                                "(default: category/label/... when present)")
    push.add_argument("--source-id", help="the source's Hub id, owner/name[@revision], named in the card")
    push.set_defaults(func=cmd_push)

    evaluate = commands.add_parser(
        "evaluate", help="does a coreset beat random? train a proxy on it, on random subsets and on the pool",
        description="Train a light proxy (image and text heads, or a linear probe) on the coreset CORESET of POOL, "
                    "on random subsets of the same size and on all of POOL, for each seed; score each on --test "
                    "(rows the selection never saw) and write report.md / report.json / report.png.")
    evaluate.add_argument("pool", metavar="POOL", help="the dataset the coreset was selected from (same kinds of "
                                                      "source as `select`)")
    evaluate.add_argument("coreset", metavar="CORESET", help="a `hf-coreset select` --output folder, or its "
                                                            "selection.json")
    evaluate.add_argument("--test", required=True, help="held-out rows with the same columns (same kinds of source)")
    evaluate.add_argument("--split", help="split of POOL when it has several (default: train)")
    evaluate.add_argument("--test-split", help="split of --test when it has several (default: train)")
    evaluate.add_argument("--output", help="folder for the report files (default: the CORESET folder)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace report files already in --output")
    _add_feature_flags(evaluate)
    _add_evaluation_flags(evaluate, prefix="")
    evaluate.add_argument("--baselines", type=lambda s: s.split(","), default=["random", "full"], metavar="B1,B2",
                          help="comma-separated, any of random,full (default: random,full)")
    evaluate.add_argument("--id-column", help="a column of row ids in both POOL and --test; a shared id is refused")
    evaluate.add_argument("--duplicates", choices=["raise", "drop"], default="raise",
                          help="test rows identical to pool rows: refuse them, or score without them (default: "
                               "raise)")
    evaluate.add_argument("--no-progress", action="store_true", help="hide progress bars")
    evaluate.set_defaults(func=cmd_evaluate)

    methods = commands.add_parser("methods", help="list the registered methods and their options")
    methods.set_defaults(func=cmd_methods)

    demo = commands.add_parser("demo", help="the main job: every method on the shipped Open Clip Art sample")
    demo.add_argument("--budget", type=parse_budget, default=0.1, help="budget per method (default: 0.1)")
    demo.add_argument("--methods", type=lambda s: s.split(","), help="comma-separated subset of methods")
    demo.set_defaults(func=cmd_demo)
    return parser


def _add_feature_flags(parser: argparse.ArgumentParser) -> None:
    """How `evaluate` gets features: the same choices as `select`."""
    parser.add_argument("--image-column", help="image column to encode (e.g. image)")
    parser.add_argument("--text-column", help="text column to encode (e.g. caption)")
    parser.add_argument("--embedding-columns", type=lambda s: s.split(","),
                        help="comma-separated columns of precomputed vectors, image first; skips encoding")
    parser.add_argument("--image-encoder", default=OFFLINE_IMAGE_ENCODER,
                        help="as for `select` (default: %(default)s)")
    parser.add_argument("--text-encoder", default=OFFLINE_TEXT_ENCODER, help="as for `select` (default: %(default)s)")
    parser.add_argument("--cache-dir", help="where encoded features are cached (default: datasets cache)")


def _add_evaluation_flags(parser: argparse.ArgumentParser, prefix: str) -> None:
    """The proxy recipe, shared by `evaluate` and `select --evaluate` (there with an eval- prefix)."""
    parser.add_argument("--proxy", choices=["dual_encoder", "linear_probe"], default="dual_encoder",
                        help="image and text heads scored by retrieval recall, or a linear probe scored by accuracy "
                             "(needs --label-column) (default: dual_encoder)")
    parser.add_argument("--label-column", help="class column: the linear probe's target; for dual_encoder, "
                                               "class-level relevance")
    parser.add_argument(f"--{prefix}seeds", dest="eval_seeds", type=lambda s: [int(v) for v in s.split(",")],
                        default=[0, 1, 2], metavar="S1,S2,...",
                        help="comma-separated training seeds, one run per seed and arm (default: 0,1,2)")
    parser.add_argument(f"--{prefix}steps", dest="eval_steps", type=int, default=500, metavar="N",
                        help="optimisation steps of every proxy run (default: 500)")
    parser.add_argument("--heads", choices=["mlp", "linear"], default="mlp",
                        help="dual_encoder heads (default: mlp)")


def _add_push_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--exist-ok", action="store_true",
                        help="replace the data and card of a Hub repo that already holds files")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; every failure ends in one line on stderr (exit code 2), Ctrl-C in "interrupted"
    (exit code 130). ``HF_CORESET_DEBUG=1`` shows the traceback instead."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("hf-coreset: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except Exception as err:
        if os.environ.get("HF_CORESET_DEBUG"):
            raise
        print(f"hf-coreset: error: {_describe(err)}", file=sys.stderr)
        return 2


def _describe(err: Exception) -> str:
    """One line for the user, with any Hub token removed. Our own errors (input errors, failed pushes) say
    what to do; anything else names its type and how to see the traceback."""
    from .integrations.hub import redact_token

    if isinstance(err, (ValueError, ImportError, PushFailed)):
        message = _one_line(err)
    elif isinstance(err, OSError) and err.strerror:  # a file or the network: "Permission denied: 'x'"
        message = f"{err.strerror}" + (f": {err.filename!r}" if err.filename else "")
    else:
        message = f"{type(err).__name__}: {_one_line(err)} (set HF_CORESET_DEBUG=1 to see the traceback)"
    return redact_token(message)


def _one_line(err: BaseException) -> str:
    """The error's message with its lines joined (a server's answer often spans several)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
