"""Encoders (rows -> vectors) and ``encode_dataset``, which applies them in batches, cached.

An :class:`Encoder` turns a batch of RGB PIL images or strings into a float32 matrix and has a stable
``fingerprint``. ``encode_dataset`` runs one encoder per modality over a dataset column and caches the
result in an Arrow file named after (dataset fingerprint, column, encoder fingerprint, ``on_error``, and for
images given by path each file's size and modification time), so a second call with the same data and encoder
reads the file and never calls the encoder, even for in-memory datasets built with ``Dataset.from_dict``
(which have no cache files of their own). :mod:`.cache` checks the file on reading, and resumes an interrupted
encoding from its last checkpoint.

Example:
    >>> import datasets, numpy as np
    >>> from hf_coreset.features.encoders import CallableEncoder, encode_dataset
    >>> ds = datasets.Dataset.from_dict({"caption": ["a cat", "a dog", None]})
    >>> enc = CallableEncoder(lambda texts: [[len(t), t.count("a")] for t in texts], "text", name="len")
    >>> result = encode_dataset(ds, text_column="caption", text_encoder=enc, show_progress=False)
    >>> result.embeddings["text"][:2].tolist(), result.failed_rows
    ([[5.0, 2.0], [5.0, 1.0]], {'missing_text': [2]})

torch and transformers are imported only by the ``Transformers*Encoder`` classes, so callable encoders
work without them.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import inspect
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
from datasets.fingerprint import Hasher
from PIL import Image

from ..config import check_positive
from ..errors import BadFeaturesError, CoresetInputError, MissingColumnError, UnreadableImageError
from ..validation import ON_ERROR_VALUES
from .cache import cached_map, image_file_state

logger = logging.getLogger(__name__)

MODALITIES = ("image", "text")
POOLING_VALUES = ("auto", "pooler", "mean", "cls")

# Bump when the layout of the cached Arrow files or the key changes, so that old files are not read back.
_CACHE_FORMAT_VERSION = "2"
_EMBEDDING = "embedding"
_FAILURE = "failure"
UNREADABLE_IMAGE = "unreadable_image"
_MISSING_TEXT = "missing_text"


# --------------------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------------------


class Encoder(abc.ABC):
    """Turns a batch of inputs of one modality into a float32 matrix of shape (batch, dim).

    Subclasses set ``modality`` ("image": a list of RGB PIL images, or "text": a list of str) and implement
    ``encode`` and ``_compute_fingerprint``. The fingerprint names the weights and the preprocessing; it is
    part of the cache key, so two encoders with the same fingerprint must produce the same vectors.
    Encoders must pickle (``datasets`` may pickle map functions).

    Example:
        >>> class Lengths(Encoder):
        ...     modality = "text"
        ...     def _compute_fingerprint(self):
        ...         return "lengths-v1"
        ...     def encode(self, batch):
        ...         return np.array([[len(t)] for t in batch], dtype=np.float32)
        >>> Lengths().encode(["ab", "abc"]).tolist(), Lengths().fingerprint
        ([[2.0], [3.0]], 'lengths-v1')
    """

    modality: str

    @property
    def fingerprint(self) -> str:
        """Stable hex string naming weights + preprocessing; computed on first use, then cached."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            cached = self.__dict__["_fingerprint"] = self._compute_fingerprint()
        return cached

    @property
    def name(self) -> str:
        """Short human-readable name, used in progress bars and messages."""
        return type(self).__name__

    @abc.abstractmethod
    def _compute_fingerprint(self) -> str:
        """Return a string that changes whenever the vectors ``encode`` produces could change."""

    @abc.abstractmethod
    def encode(self, batch: list) -> np.ndarray:
        """Encode a list of RGB PIL images or strings into a float32 array of shape (len(batch), dim)."""


class CallableEncoder(Encoder):
    """Wraps any function ``fn(list) -> array-like (B, d)`` as an encoder.

    The fingerprint is ``name`` when given (use it when ``fn`` closes over a model, whose weights the
    function hash cannot see), else ``datasets.fingerprint.Hasher.hash(fn)``.

    Example:
        >>> enc = CallableEncoder(lambda texts: [[float(len(t))] for t in texts], "text", name="length-v1")
        >>> enc.encode(["hi", "hello"]).tolist(), enc.fingerprint
        ([[2.0], [5.0]], 'length-v1')
    """

    def __init__(self, fn: Callable[[list], Any], modality: str, *, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"CallableEncoder needs a callable, got {type(fn).__name__}.")
        self.fn = fn
        self.modality = _check_modality(modality)
        self._name = name

    @property
    def name(self) -> str:
        return self._name or getattr(self.fn, "__name__", type(self.fn).__name__)

    def _compute_fingerprint(self) -> str:
        return self._name if self._name is not None else Hasher.hash(self.fn)

    def encode(self, batch: list) -> np.ndarray:
        return np.asarray(self.fn(batch), dtype=np.float32)


class _TransformersEncoder(Encoder):
    """Shared code of the two ``transformers`` wrappers: device, eval mode, pooling, fingerprint."""

    def __init__(self, model: Any, preprocessor: Any, *, device: Any = None, pooling: str = "auto"):
        import torch  # here, not at module level: callable encoders must work without torch

        if pooling not in POOLING_VALUES:
            raise CoresetInputError(
                f"pooling={pooling!r} is not supported; use one of {list(POOLING_VALUES)}."
            )
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.model = model.to(self.device).eval()
        self.preprocessor = preprocessor
        self.pooling = pooling

    @property
    def name(self) -> str:
        return type(self.model).__name__

    def _compute_fingerprint(self) -> str:
        parts = [
            type(self).__name__,
            type(self.model).__name__,
            self.model.config.to_json_string(),
            hash_parameters(self.model),
            preprocessor_signature(self.preprocessor),
            f"pooling={self.pooling}",
            *self._extra_fingerprint_parts(),
        ]
        return blake2b_hex("\n".join(parts).encode())

    def _extra_fingerprint_parts(self) -> list[str]:
        return []

    def _run(self, features_method: str, backbone_attr: str, inputs: dict, mask: Any = None) -> np.ndarray:
        """Forward pass -> (B, d) float32: the model's ``get_*_features`` when pooling is "auto" and the
        model has it (CLIP-style), else the backbone's pooled output."""
        import torch

        inputs = {key: self._to_model(value) for key, value in inputs.items()}
        with torch.inference_mode():
            method = getattr(self.model, features_method, None)
            if self.pooling == "auto" and callable(method):
                features = _features_tensor(method(**_accepted_inputs(method, inputs)))
            else:
                backbone = getattr(self.model, backbone_attr, None)
                backbone = self.model if backbone is None else backbone  # CLIP's tower, or the model itself
                features = self._pool(backbone(**inputs), mask)
            return _to_matrix(features.float(), mask).cpu().numpy()

    def _to_model(self, tensor: Any) -> Any:
        """Move an input to the model's device; float inputs (pixels) also take its dtype (fp16 / bf16)."""
        if tensor.is_floating_point():
            return tensor.to(self.device, dtype=getattr(self.model, "dtype", tensor.dtype))
        return tensor.to(self.device)

    def _pool(self, output: Any, mask: Any) -> Any:
        pooled = getattr(output, "pooler_output", None)
        if self.pooling in ("auto", "pooler") and pooled is not None:
            return pooled
        if self.pooling == "pooler":
            raise CoresetInputError(
                f"pooling='pooler' but {type(self.model).__name__} returns no pooler_output; "
                "use pooling='mean' or 'cls'."
            )
        hidden = output.last_hidden_state
        return hidden[:, 0] if self.pooling == "cls" else hidden  # "mean": _to_matrix averages the tokens


class TransformersImageEncoder(_TransformersEncoder):
    """Image encoder from a ``transformers`` model and its image processor (or multimodal processor).

    CLIP-style models (with ``get_image_features``) give their projected image embedding; other backbones
    give ``pooler_output`` when they have one, else the mean of ``last_hidden_state`` over tokens or spatial
    positions. ``pooling`` may force "pooler", "mean" or "cls" (backbone output, even for CLIP).

    Example:
        >>> from transformers import ViTConfig, ViTImageProcessor, ViTModel
        >>> model = ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                            intermediate_size=16, image_size=16, patch_size=8))
        >>> processor = ViTImageProcessor(size={"height": 16, "width": 16})
        >>> enc = TransformersImageEncoder(model, processor)
        >>> enc.encode([Image.new("RGB", (20, 20))]).shape
        (1, 16)
    """

    modality = "image"

    def encode(self, batch: list) -> np.ndarray:
        inputs = dict(self.preprocessor(images=batch, return_tensors="pt"))
        return self._run("get_image_features", "vision_model", inputs)


class TransformersTextEncoder(_TransformersEncoder):
    """Text encoder from a ``transformers`` model and its tokenizer (or multimodal processor).

    CLIP-style models (with ``get_text_features``) give their projected text embedding; other backbones
    give ``pooler_output`` when they have one, else the attention-masked mean of ``last_hidden_state``.
    Texts are padded per batch and truncated to ``max_length`` tokens.

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
        >>> vocab = {"[PAD]": 0, "[UNK]": 1, "a": 2, "cat": 3}
        >>> backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        >>> backend.pre_tokenizer = pre_tokenizers.Whitespace()
        >>> tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]")
        >>> model = BertModel(BertConfig(vocab_size=4, hidden_size=16, num_hidden_layers=1,
        ...                              num_attention_heads=2, intermediate_size=16))
        >>> TransformersTextEncoder(model, tokenizer, pooling="mean").encode(["a cat", "cat"]).shape
        (2, 16)
    """

    modality = "text"

    def __init__(
        self,
        model: Any,
        tokenizer_or_processor: Any,
        *,
        device: Any = None,
        pooling: str = "auto",
        max_length: int = 77,
    ):
        super().__init__(model, tokenizer_or_processor, device=device, pooling=pooling)
        self.max_length = max_length

    def _extra_fingerprint_parts(self) -> list[str]:
        return [f"max_length={self.max_length}"]

    def encode(self, batch: list) -> np.ndarray:
        inputs = dict(
            self.preprocessor(
                text=list(batch),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )
        mask = inputs.get("attention_mask")
        return self._run(
            "get_text_features", "text_model", inputs, None if mask is None else mask.to(self.device)
        )


def as_encoder(obj: Any, modality: str) -> Encoder:
    """Normalise what a user passes as an encoder.

    An ``Encoder`` passes through; a ``(model, processor)`` tuple becomes a ``Transformers*Encoder``; a plain
    callable ``fn(list) -> (B, d)`` becomes a ``CallableEncoder``.

    Example:
        >>> as_encoder(lambda texts: [[0.0]] * len(texts), "text").modality
        'text'
    """
    modality = _check_modality(modality)
    if isinstance(obj, Encoder):
        if obj.modality != modality:
            raise CoresetInputError(
                f"{obj.name} encodes {obj.modality}, but it was given for the {modality} column."
            )
        return obj
    if isinstance(obj, tuple) and len(obj) == 2 and _looks_like_model(obj[0]):
        cls = TransformersImageEncoder if modality == "image" else TransformersTextEncoder
        return cls(*obj)
    if _looks_like_model(obj):
        # A bare model is callable too, but it cannot take a list of PIL images or strings.
        raise TypeError(
            f"Got a bare {type(obj).__name__}; pass it with its preprocessor as a (model, processor) tuple, "
            f"e.g. (AutoModel.from_pretrained(name), AutoProcessor.from_pretrained(name))."
        )
    if callable(obj):
        return CallableEncoder(obj, modality)
    raise TypeError(
        f"Cannot use a {type(obj).__name__} as the {modality} encoder; pass an hf_coreset Encoder, a "
        f"(model, processor) tuple, or a function mapping a list of {_input_kind(modality)} to a "
        "(B, d) array."
    )


# --------------------------------------------------------------------------------------------------------
# encode_dataset
# --------------------------------------------------------------------------------------------------------


@dataclass
class EncodingResult:
    """What ``encode_dataset`` returns.

    ``embeddings`` maps each modality asked for to an (N, d) float32 array whose failed rows are NaN;
    ``failed_rows`` maps a reason ("unreadable_image", "missing_text") to sorted row indices; ``cache_hit``
    is True when every modality was read from the cache without calling an encoder.
    """

    embeddings: dict[str, np.ndarray]
    failed_rows: dict[str, list[int]] = field(default_factory=dict)
    cache_hit: bool = False


def encode_dataset(
    dataset: datasets.Dataset,
    *,
    image_column: str | None = None,
    text_column: str | None = None,
    image_encoder: Any = None,
    text_encoder: Any = None,
    batch_size: int = 32,
    on_error: str = "report",
    cache_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
) -> EncodingResult:
    """Encode an image column and/or a text column into float32 matrices, cached by fingerprint.

    Each encoder runs over the column in batches of ``batch_size``, writing only the embedding to an Arrow file
    in ``cache_dir`` (default ``<HF_DATASETS_CACHE>/hf_coreset/features``); the file is named after the dataset
    fingerprint, the column, the encoder fingerprint and ``on_error`` (and, for image files given by path, their
    sizes and modification times), so a second call reads it back without calling the encoder. A corrupt cache
    file is named in a warning and rebuilt; an interrupted encoding resumes from its last checkpoint (see
    :mod:`hf_coreset.features.cache`). Unreadable images and ``None`` captions get NaN rows and are listed in
    ``failed_rows`` (``on_error="report"``), or raise naming the row (``on_error="raise"``).

    Example:
        >>> import datasets
        >>> ds = datasets.Dataset.from_dict({"image": [Image.new("RGB", (4, 4), (255, 0, 0))] * 3})
        >>> mean_rgb = CallableEncoder(lambda ims: [np.asarray(im).mean((0, 1)) for im in ims], "image",
        ...                            name="mean-rgb")
        >>> res = encode_dataset(ds, image_column="image", image_encoder=mean_rgb, show_progress=False)
        >>> res.embeddings["image"].shape, res.failed_rows
        ((3, 3), {})
    """
    jobs = _check_arguments(dataset, image_column, text_column, image_encoder, text_encoder, on_error, batch_size)
    cache_dir = prepare_cache_dir(cache_dir)
    embeddings: dict[str, np.ndarray] = {}
    failed_rows: dict[str, list[int]] = {}
    all_hits = True
    with progress_bars(show_progress):
        for modality, column, encoder in jobs:
            matrix, failures, hit = _encode_column(
                dataset, column, encoder, batch_size=batch_size, on_error=on_error, cache_dir=cache_dir
            )
            embeddings[modality] = matrix
            failed_rows.update(failures)
            all_hits = all_hits and hit
    return EncodingResult(embeddings=embeddings, failed_rows=failed_rows, cache_hit=all_hits)


def _check_arguments(
    dataset: Any,
    image_column: str | None,
    text_column: str | None,
    image_encoder: Any,
    text_encoder: Any,
    on_error: str,
    batch_size: int,
) -> list[tuple[str, str, Encoder]]:
    """Validate everything up front (before any model runs); return (modality, column, encoder) jobs."""
    if on_error not in ON_ERROR_VALUES:
        raise CoresetInputError(
            f"on_error={on_error!r} is not supported; use one of {list(ON_ERROR_VALUES)}."
        )
    check_positive("batch_size", batch_size)
    if not isinstance(dataset, datasets.Dataset):
        raise CoresetInputError(
            f"encode_dataset needs a datasets.Dataset, got {type(dataset).__name__}; "
            "pick a split first (e.g. dataset_dict['train'])."
        )
    if len(dataset) == 0:
        raise CoresetInputError("The dataset is empty (0 rows); there is nothing to encode.")
    jobs = []
    for modality, column, encoder in (
        ("image", image_column, image_encoder),
        ("text", text_column, text_encoder),
    ):
        if column is None and encoder is None:
            continue
        if encoder is None:
            raise CoresetInputError(
                f"{modality}_column={column!r} was given but {modality}_encoder is missing."
            )
        if column is None:
            raise CoresetInputError(f"{modality}_encoder was given but {modality}_column is missing.")
        if column not in dataset.column_names:
            raise MissingColumnError(
                f"{modality}_column={column!r} is not a column of the dataset; its columns are "
                f"{dataset.column_names}."
            )
        jobs.append((modality, column, as_encoder(encoder, modality)))
    if not jobs:
        raise CoresetInputError(
            "Nothing to encode: give image_column with image_encoder and/or text_column with text_encoder."
        )
    return jobs


def prepare_cache_dir(cache_dir: str | os.PathLike | None) -> str:
    """The feature cache folder (default: ``hf_coreset/features`` under the ``datasets`` cache), created."""
    if cache_dir is None:
        cache_dir = os.path.join(datasets.config.HF_DATASETS_CACHE, "hf_coreset", "features")
    cache_dir = os.fspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    return cache_dir


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Turn datasets' progress bars off for the duration if asked, then restore the previous state."""
    if enabled or datasets.are_progress_bars_disabled():
        yield
        return
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        datasets.enable_progress_bars()


def _encode_column(
    dataset: datasets.Dataset,
    column: str,
    encoder: Encoder,
    *,
    batch_size: int,
    on_error: str,
    cache_dir: str,
) -> tuple[np.ndarray, dict[str, list[int]], bool]:
    """Run one encoder over one column, through the feature cache; return (matrix, failed rows, cache hit)."""
    key = ("hf_coreset.features", _CACHE_FORMAT_VERSION, dataset._fingerprint, column, encoder.fingerprint, on_error)
    if encoder.modality == "image":  # files replaced at the same path must not return their old vectors
        key += (image_file_state(dataset, column),)
    cache_file = os.path.join(cache_dir, f"{encoder.modality}-{Hasher.hash(key)}.arrow")
    mapped, cache_hit = cached_map(
        _column_view(dataset, column, encoder.modality),
        _BatchEncoder(encoder, column, on_error),
        cache_file,
        features=datasets.Features({_EMBEDDING: float32_list_feature(), _FAILURE: datasets.Value("string")}),
        batch_size=batch_size,
        desc=f"Encoding {encoder.modality} with {encoder.name}",
    )
    row_failures = list(mapped[_FAILURE])
    matrix = read_embeddings(mapped, row_failures, column, encoder.modality)
    failures = group_failures(row_failures)
    _log_failures(failures, column)
    return matrix, failures, cache_hit


def _column_view(dataset: datasets.Dataset, column: str, modality: str) -> datasets.Dataset:
    """Only the column to encode (other columns are neither decoded nor copied), with images left undecoded
    so that one unreadable file does not crash the whole batch."""
    view = dataset.select_columns([column])
    feature = view.features[column]
    if modality == "image" and isinstance(feature, datasets.Image) and feature.decode:
        view = view.cast_column(column, datasets.Image(decode=False))
    return view


def float32_list_feature() -> Any:
    """The ``datasets`` feature of one vector per row: a variable-length list of float32."""
    # datasets >= 4 spells a variable-length list ``List``; older versions ``Sequence``.
    list_type = getattr(datasets, "List", None) or datasets.Sequence
    return list_type(datasets.Value("float32"))


class _BatchEncoder:
    """The batch function: decodes/validates a batch, encodes the good rows, marks the bad ones.

    A class rather than a closure so that it pickles with just the encoder and two strings.
    """

    def __init__(self, encoder: Encoder, column: str, on_error: str):
        self.encoder = encoder
        self.column = column
        self.on_error = on_error

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        values = batch[self.column]
        inputs, failures = [], []
        for value, row in zip(values, indices, strict=True):
            item, failure = self._prepare(value, row)
            inputs.append(item)
            failures.append(failure)
        good = [i for i, failure in enumerate(failures) if failure is None]
        vectors = self._encode([inputs[i] for i in good], [indices[i] for i in good])
        embeddings: list[np.ndarray | None] = [None] * len(values)
        for position, vector in zip(good, vectors, strict=True):
            embeddings[position] = vector
        return {_EMBEDDING: embeddings, _FAILURE: failures}

    def _prepare(self, value: Any, row: int) -> tuple[Any, str | None]:
        """One raw cell -> (encoder input, None) or (None, failure reason), honouring on_error."""
        try:
            if self.encoder.modality == "image":
                return load_image(value, row, self.column), None
            return _check_text(value, row, self.column), None
        except RowFailure as failure:
            if self.on_error == "raise":
                raise failure.as_error(row, self.column) from failure.__cause__
            return None, failure.reason

    def _encode(self, inputs: list, rows: list[int]) -> np.ndarray:
        if not inputs:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.asarray(self.encoder.encode(inputs), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(inputs):
            raise BadFeaturesError(
                f"{self.encoder.name} returned an array of shape {vectors.shape} for {len(inputs)} inputs; "
                f"an encoder must return shape (batch, dim)."
            )
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            bad_row = rows[int(np.argmin(finite))]
            raise BadFeaturesError(
                f"{self.encoder.name} returned NaN or inf for row {bad_row} of column {self.column!r}; "
                "check the model's dtype (float16 overflow?) and that row's input."
            )
        return vectors


class RowFailure(Exception):
    """A row that cannot be encoded (reported, or raised as a user-facing error with on_error='raise')."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def as_error(self, row: int, column: str) -> CoresetInputError:
        if self.reason == UNREADABLE_IMAGE:
            return UnreadableImageError(
                f"Could not read the image in row {row} of column {column!r}: {self.detail}. Fix or drop "
                "that row, or pass on_error='report' to give unreadable images NaN vectors and list them in "
                "failed_rows."
            )
        return CoresetInputError(
            f"Row {row} of column {column!r} has no text (None). Fill or drop that row, or pass "
            "on_error='report' to give it a NaN vector and list it in failed_rows."
        )


def load_image(value: Any, row: int, column: str) -> Image.Image:
    """Decode one cell (Image feature dict, bytes, path or PIL image) to RGB; RowFailure if unreadable."""
    if isinstance(value, Image.Image):
        source: Any = value
    elif isinstance(value, dict) and ("bytes" in value or "path" in value):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value.get("path")
    elif isinstance(value, bytes | bytearray):
        source = io.BytesIO(value)
    elif isinstance(value, str | os.PathLike) or value is None:
        source = value
    else:
        raise CoresetInputError(
            f"Row {row} of column {column!r} holds a {type(value).__name__}; an image column must hold "
            "images (an Image feature), file paths, or encoded bytes."
        )
    if source is None:
        raise RowFailure(UNREADABLE_IMAGE, "the cell is empty (None)")
    try:
        image = source if isinstance(source, Image.Image) else Image.open(source)
        return image.convert("RGB")  # convert() forces the full decode, so truncated files fail here
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ValueError, struct.error...)
        raise RowFailure(UNREADABLE_IMAGE, f"{type(error).__name__}: {error}") from error


def _check_text(value: Any, row: int, column: str) -> str:
    if value is None:
        raise RowFailure(_MISSING_TEXT, "the cell is empty (None)")
    if not isinstance(value, str):
        raise CoresetInputError(
            f"Row {row} of column {column!r} holds a {type(value).__name__}, not a string; a text column "
            "must hold str values (cast or map it first)."
        )
    return value


def read_embeddings(
    mapped: datasets.Dataset, failures: list[str | None], column: str, modality: str
) -> np.ndarray:
    """The mapped dataset -> (N, d) float32 with NaN rows where encoding failed."""
    good = [i for i, failure in enumerate(failures) if failure is None]
    if not good:
        raise CoresetInputError(
            f"None of the {len(failures)} rows of column {column!r} could be encoded as {modality} "
            f"(reasons: {sorted(set(failures))}); check the column."
        )
    # Reading only the good rows gives a rectangular float32 block (failed rows are null lists).
    readable = mapped if len(good) == len(failures) else mapped.select(good)
    block = np.asarray(readable.with_format("numpy")[_EMBEDDING], dtype=np.float32)
    if block.ndim != 2:
        raise BadFeaturesError(f"The encoder returned vectors of different lengths for column {column!r}.")
    matrix = np.full((len(failures), block.shape[1]), np.nan, dtype=np.float32)
    matrix[good] = block
    return matrix


def group_failures(failures: Sequence[str | None]) -> dict[str, list[int]]:
    """Row numbers per failure reason (rows whose reason is None succeeded and are left out)."""
    grouped: dict[str, list[int]] = {}
    for row, reason in enumerate(failures):
        if reason is not None:
            grouped.setdefault(reason, []).append(row)
    return grouped


def _log_failures(failures: dict[str, list[int]], column: str) -> None:
    for reason, rows in failures.items():
        shown = ", ".join(str(row) for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
        logger.warning(
            "%d row(s) of column %r could not be encoded (%s): rows %s. They have NaN vectors and are "
            "listed in EncodingResult.failed_rows[%r].",
            len(rows),
            column,
            reason,
            shown,
            reason,
        )


# --------------------------------------------------------------------------------------------------------
# Helpers for the transformers wrappers
# --------------------------------------------------------------------------------------------------------


def _check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise CoresetInputError(f"modality={modality!r} is not supported; use one of {list(MODALITIES)}.")
    return modality


def _input_kind(modality: str) -> str:
    return "RGB PIL images" if modality == "image" else "strings"


def _looks_like_model(obj: Any) -> bool:
    return hasattr(obj, "state_dict") and hasattr(obj, "config")


def _model_device(model: Any) -> Any:
    import torch

    parameter = next(iter(model.parameters()), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def blake2b_hex(data: bytes) -> str:
    """A 32-hex-digit blake2b digest: the fingerprints of encoders and extractors."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_parameters(model: Any) -> str:
    """blake2b over every state_dict tensor (name, dtype, shape, raw bytes), in state_dict order."""
    import torch

    hasher = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        hasher.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        # Viewing as bytes works for every dtype, bfloat16 included (which numpy cannot hold).
        hasher.update(tensor.reshape(-1).view(dtype=torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def preprocessor_signature(preprocessor: Any) -> str:
    """Settings of a tokenizer / image processor / processor that change its outputs, as a string."""
    parts = [type(preprocessor).__name__]
    to_json = getattr(preprocessor, "to_json_string", None)
    if callable(to_json):
        parts.append(to_json())
    backend = getattr(preprocessor, "backend_tokenizer", None)
    if backend is not None:  # fast tokenizer: the full tokenizer.json (vocab, normaliser, post-processor)
        parts.append(backend.to_str())
    elif callable(getattr(preprocessor, "get_vocab", None)):
        parts.append(repr(sorted(preprocessor.get_vocab().items())))
    for attribute in ("tokenizer", "image_processor"):  # processors bundle both
        inner = getattr(preprocessor, attribute, None)
        if inner is not None and inner is not preprocessor:
            parts.append(preprocessor_signature(inner))
    if len(parts) == 1:  # unknown kind: fall back to datasets' (content-based) hasher
        parts.append(Hasher.hash(preprocessor))
    return "\n".join(parts)


def _accepted_inputs(method: Callable, inputs: dict) -> dict:
    """Keep the inputs a ``get_*_features`` method names (CLIP's takes no token_type_ids)."""
    parameters = inspect.signature(method).parameters
    named = {name for name, p in parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    return {key: value for key, value in inputs.items() if key in named}


def _features_tensor(output: Any) -> Any:
    """``get_*_features`` returns a tensor in transformers 4.x and an output object in 5.x."""
    if hasattr(output, "dim"):
        return output
    for key in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(output, key, None)
        if value is not None:
            return value
    raise CoresetInputError(
        f"Cannot find the embedding in {type(output).__name__}; pass pooling='mean' to pool the backbone."
    )


def _to_matrix(features: Any, mask: Any = None) -> Any:
    """(B, d) as is; (B, T, d) -> masked mean over tokens; (B, C, H, W) -> mean over spatial positions."""
    if features.dim() == 2:
        return features
    if features.dim() == 3:
        if mask is None:
            return features.mean(dim=1)
        weights = mask.to(features.dtype).unsqueeze(-1)
        return (features * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    if features.dim() == 4:
        return features.mean(dim=(2, 3))
    raise CoresetInputError(
        f"Cannot pool model output of shape {tuple(features.shape)} into one vector per row."
    )
