"""hf-coreset: select a coreset of a dataset from the command line.

    hf-coreset select PATH --method dq --budget 0.1 --output out/
    hf-coreset select PATH --method dq --budget 0.1 --output out/ --push-to-hub me/my-coreset [--private]
    hf-coreset push out/ me/my-coreset [--private] [--exist-ok]
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
    encoders = {}
    if not args.embedding_columns:
        if args.image_column:
            encoders["image_encoder"] = load_encoder(args.image_encoder, "image")
        if args.text_column:
            encoders["text_encoder"] = load_encoder(args.text_encoder, "text")
    subset = select_coreset(
        dataset, args.method, args.budget,
        image_column=None if args.embedding_columns else args.image_column,
        text_column=None if args.embedding_columns else args.text_column,
        embedding_columns=args.embedding_columns, seed=args.seed, return_scores=args.return_scores,
        batch_size=args.batch_size, on_error=args.on_error, cache_dir=args.cache_dir,
        show_progress=not args.no_progress, **encoders, **options,
    )
    result = get_selection_result(subset)
    write_atomically(subset, result.to_json(indent=2), args.output, overwrite=args.overwrite, source=args.source)
    dropped = {reason: info["count"] for reason, info in result.provenance["rows_dropped"].items()}
    print(f"{args.method}: kept {subset.num_rows} of {dataset.num_rows} rows"
          f"{f', dropped {dropped}' if dropped else ''} -> {args.output}")
    if args.push_to_hub:
        source_id = args.source if looks_like_hub_id(args.source) else None
        return _push(subset, args.push_to_hub, args, source=dataset, source_id=source_id)
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
    return _push(subset, args.repo_id, args, source_id=args.source_id)


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
    select.set_defaults(func=cmd_select)

    push = commands.add_parser("push", help="push a `select` output folder to the Hub with a dataset card",
                               description="Push the coreset saved in DIR (a `hf-coreset select` --output) to "
                                           "the Hub dataset repo REPO: parquet shards, README card and figures in "
                                           "one commit. The token comes from HF_TOKEN or `hf auth login`.")
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

    methods = commands.add_parser("methods", help="list the registered methods and their options")
    methods.set_defaults(func=cmd_methods)

    demo = commands.add_parser("demo", help="the main job: every method on the shipped Open Clip Art sample")
    demo.add_argument("--budget", type=parse_budget, default=0.1, help="budget per method (default: 0.1)")
    demo.add_argument("--methods", type=lambda s: s.split(","), help="comma-separated subset of methods")
    demo.set_defaults(func=cmd_demo)
    return parser


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
