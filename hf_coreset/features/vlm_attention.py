"""ScalSelect stage A: one vector per sample from the target VLM's own first-layer attention.

For every sample (a conversation and its image) the model renders the conversation with its chat template,
runs ONLY the vision tower, the projector and the first decoder layer (eager attention, forced for that
forward whatever the model was loaded with), and captures with forward hooks the layer-0 attention
probabilities and the raw layer-0 output. The visual tokens most attended by the user's tokens (the
smallest set holding a fraction ``tau`` of that attention) are averaged into the representation.

Why hooks and not ``output_attentions=True``: the full forward materialises the attention of every layer
(gigabytes per sample on a 7B model, the public code's out-of-memory); here a ``_StopForward`` raised
right after layer 0 ends the forward, so layers 1.. never run. The rest of the forward (embedding lookup,
image-feature merge at the image-token positions, Qwen's multimodal rope position ids, the causal mask) is
the model's own code, so the truncated path computes exactly what the full model computes at layer 0.

Example:
    >>> import numpy as np
    >>> p = np.array([0.5, 0.3, 0.15, 0.05])     # attention mass of four visual tokens
    >>> tau_prefix(p, 0.7).tolist()               # 0.5 + 0.3 = 0.8 is the first prefix exceeding 0.7
    [0, 1]
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from ..errors import CoresetInputError, MissingColumnError
from .cache import cached_map, image_file_state
from .encoders import (
    UNREADABLE_IMAGE,
    RowFailure,
    blake2b_hex,
    float32_list_feature,
    group_failures,
    hash_parameters,
    load_image,
    prepare_cache_dir,
    preprocessor_signature,
    progress_bars,
    read_embeddings,
)

logger = logging.getLogger(__name__)

# model_type -> attribute holding the text decoder in the model's base ``*Model``.
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "llava": "language_model",
    "llava_next": "language_model",
    "llava_onevision": "language_model",
    "qwen2_vl": "language_model",
    "qwen2_5_vl": "language_model",
    "qwen3_vl": "language_model",
    "idefics3": "text_model",
    "smolvlm": "text_model",
}
# Processors that take one list of images per text (the others take a flat list).
_NESTED_IMAGE_PROCESSORS = ("idefics3", "smolvlm")
CONVERSATION_COLUMNS = ("conversations", "messages")
IMAGE_COLUMNS = ("image", "images")

# Bump when the layout of the cached Arrow files or the representation changes.
_CACHE_FORMAT_VERSION = "1"
_EMBEDDING, _FAILURE, _KEPT, _VISUAL = "embedding", "failure", "kept_tokens", "visual_tokens"
_NO_IMAGE = "no_image"
_NO_VISUAL_TOKENS = "no_visual_tokens"
_BAD_CONVERSATION = "bad_conversation"
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


# --------------------------------------------------------------------------------------------------------
# The tau rule and the pooling (pure tensor code, testable on hand-made attention)
# --------------------------------------------------------------------------------------------------------


def tau_prefix(p: np.ndarray, tau: float) -> np.ndarray:
    """Indices of the smallest set of top-mass entries of ``p`` whose cumulative mass exceeds ``tau``.

    Entries are taken by mass descending (ties: lower index first); at least one and at most all are kept,
    as in the paper's code (``count(cumsum <= tau) + 1``).

    Example:
        >>> tau_prefix(np.array([0.1, 0.6, 0.3]), 0.6).tolist()   # 0.6 does not exceed 0.6: add 0.3
        [1, 2]
    """
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    cumulative = np.cumsum(p[order])
    count = min(len(p), int(np.searchsorted(cumulative, tau, side="right")) + 1)
    return order[:count]


def visual_token_mass(attention: Any, user: Any, visual: Any) -> np.ndarray:
    """p_j: mean attention of the user tokens to visual token j (head-mean ``attention`` is (L, L)),
    normalised to sum to 1; uniform when the user tokens give the visual tokens no attention at all."""
    if len(user) == 0:
        return np.full(len(visual), 1.0 / len(visual))
    w = attention[user][:, visual].mean(dim=0).double().cpu().numpy()
    total = w.sum()
    return w / total if total > 0 else np.full(len(visual), 1.0 / len(visual))


def pool_visual_tokens(
    hidden: Any, attention: Any, visual: Any, user: Any, tau: float
) -> tuple[np.ndarray, int]:
    """Representation r (D,) = mean of the layer-0 outputs ``hidden`` (L, D) at the kept visual tokens.

    ``attention`` is the head-mean layer-0 attention (L, L); ``visual`` / ``user`` are position tensors.
    Returns ``(r, number of kept tokens)``.
    """
    p = visual_token_mass(attention, user, visual)
    kept = visual[tau_prefix(p, tau)]
    return hidden[kept].float().mean(dim=0).cpu().numpy(), len(kept)


# --------------------------------------------------------------------------------------------------------
# Conversations -> chat-template messages
# --------------------------------------------------------------------------------------------------------


def to_chat_messages(conversation: Any, n_images: int) -> list[dict[str, Any]]:
    """LLaVA ``conversations`` ({"from", "value"} with ``<image>`` markers) or OpenAI-style ``messages``
    ({"role", "content"}) -> chat-template messages, with the ``n_images`` images first in the first user
    turn (where LLaVA-format data puts them) and the markers removed.

    Example:
        >>> to_chat_messages([{"from": "human", "value": "<image>\\nWhat is it?"},
        ...                   {"from": "gpt", "value": "A cat."}], 1)[0]["content"]
        [{'type': 'image'}, {'type': 'text', 'text': 'What is it?'}]
    """
    if isinstance(conversation, str):  # a JSON-encoded conversation column
        try:
            conversation = json.loads(conversation)
        except ValueError as error:
            raise RowFailure(_BAD_CONVERSATION, f"the conversation string is not JSON ({error})") from error
    if isinstance(conversation, str) or not isinstance(conversation, Sequence) or not conversation:
        raise RowFailure(_BAD_CONVERSATION, "the conversation is not a non-empty list of turns")
    messages, images_placed = [], False
    for turn in conversation:
        role, text = _role_and_text(turn)
        content: list[dict[str, Any]] = []
        if role == "user" and not images_placed:
            content += [{"type": "image"} for _ in range(n_images)]
            images_placed = True
        if text:
            content.append({"type": "text", "text": text})
        messages.append({"role": role, "content": content})
    if not images_placed:
        raise RowFailure(_BAD_CONVERSATION, "the conversation has no user turn to hold the image")
    return messages


def _role_and_text(turn: Any) -> tuple[str, str]:
    if not isinstance(turn, dict):
        raise RowFailure(_BAD_CONVERSATION, f"a turn is a {type(turn).__name__}, not a dict")
    raw_role = turn.get("from") or turn.get("role")  # "or": Arrow fills a missing key with None
    role = _ROLES.get(str(raw_role).lower())
    if role is None:
        raise RowFailure(_BAD_CONVERSATION, f"unknown role {raw_role!r} (expected one of {sorted(_ROLES)})")
    content = turn.get("value") if turn.get("value") is not None else turn.get("content")
    if isinstance(content, list):  # OpenAI-style content items: keep the text, images are placed up front
        content = " ".join(item.get("text") or "" for item in content if item.get("type") == "text")
    text = str(content or "")
    return role, text.replace("<image>", "").strip()


# --------------------------------------------------------------------------------------------------------
# The extractor: hooks on layer 0 of the language model
# --------------------------------------------------------------------------------------------------------


class _StopForward(Exception):
    """Raised by the layer-0 hook: everything after the first decoder layer is skipped."""


@dataclass
class SampleRepresentation:
    """The stage-A output for one sample: the vector, and how many of its visual tokens were kept."""

    vector: np.ndarray
    kept_tokens: int
    visual_tokens: int


class VLMAttentionExtractor:
    """Applies the ScalSelect stage-A rule of a transformers VLM to single samples.

    Args:
        model: a supported ``*ForConditionalGeneration`` (see ``SUPPORTED_ARCHITECTURES``), any attention
            implementation (layer 0 runs eager for the extraction).
        processor: its processor (chat template, tokenizer, image processor).
        tau: attention mass of the visual tokens kept.
        device: where to run (default: the model's device).
        force_eager: switch layer 0 to eager attention for the extraction (leave True; False exists to
            show the error an sdpa / flash layer gives).

    Example (downloads a 7B model, so not run here):
        >>> from transformers import AutoModelForImageTextToText, AutoProcessor      # doctest: +SKIP
        >>> model = AutoModelForImageTextToText.from_pretrained("llava-hf/llava-1.5-7b-hf")  # doctest: +SKIP
        >>> processor = AutoProcessor.from_pretrained("llava-hf/llava-1.5-7b-hf")   # doctest: +SKIP
        >>> extractor = VLMAttentionExtractor(model, processor, tau=0.9)           # doctest: +SKIP
        >>> conversation = [{"from": "human", "value": "<image>\\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]
        >>> sample = extractor.represent(conversation, [Image.open("cat.jpg")])    # doctest: +SKIP
        >>> sample.vector.shape, sample.kept_tokens <= sample.visual_tokens == 576  # doctest: +SKIP
        ((4096,), True)
    """

    def __init__(self, model: Any, processor: Any, *, tau: float = 0.9, device: Any = None,
                 force_eager: bool = True):
        import torch

        if not 0.0 < tau <= 1.0:
            raise CoresetInputError(f"tau must be in (0, 1], got {tau}.")
        self.model_type = check_supported(model)
        if device is not None:
            model = model.to(device)
        # Inputs go where the token embeddings live (also right for a model dispatched with a device_map,
        # which must not be moved as a whole).
        self.device = torch.device(device) if device is not None else model.get_input_embeddings().weight.device
        self.model = model.eval()
        self.processor = processor
        self.tau = float(tau)
        self.force_eager = force_eager
        self.first_layer = decoder_layers(model)[0]
        self.image_token_id = int(model.config.image_token_id)

    @property
    def fingerprint(self) -> str:
        """Names the weights, the processor (with its chat template) and tau; part of the cache key."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            parts = [type(self).__name__, _CACHE_FORMAT_VERSION, type(self.model).__name__,
                     self.model.config.to_json_string(), hash_parameters(self.model),
                     preprocessor_signature(self.processor), str(getattr(self.processor, "chat_template", "")),
                     f"tau={self.tau}"]
            cached = self.__dict__["_fingerprint"] = blake2b_hex("\n".join(parts).encode())
        return cached

    # -- inputs ------------------------------------------------------------------------------------------

    def build_inputs(self, conversation: Any, images: list) -> tuple[dict[str, Any], Any]:
        """Chat-template the conversation, run the processor; return (model inputs, assistant mask (L,))."""
        return encode_conversation(self.processor, self.model_type, conversation, images)

    # -- the truncated forward ---------------------------------------------------------------------------

    def layer0(self, inputs: dict[str, Any]) -> tuple[Any, Any]:
        """Run vision tower + projector + decoder layer 0 only. Returns (head-mean attention (L, L) float32,
        raw layer-0 output (L, D)) for a batch of one sample."""
        import torch

        captured: dict[str, Any] = {}

        def on_attention(module, args, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise CoresetInputError(self._no_weights_message())
            captured["attention"] = weights[0].float().mean(dim=0)  # head mean, computed at once: (L, L)

        def on_layer(module, args, output):
            captured["hidden"] = (output[0] if isinstance(output, tuple) else output)[0]
            raise _StopForward

        inputs = {key: self._to_device(value) for key, value in inputs.items()}
        handles = [self.first_layer.self_attn.register_forward_hook(on_attention),
                   self.first_layer.register_forward_hook(on_layer)]
        try:
            with self._eager_layer0(), torch.inference_mode(), contextlib.suppress(_StopForward):
                self.model(**inputs, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        if "hidden" not in captured:
            raise RuntimeError(f"The first decoder layer of {type(self.model).__name__} never ran: this is a bug.")
        return captured["attention"], captured["hidden"]

    @contextlib.contextmanager
    def _eager_layer0(self) -> Iterator[None]:
        """Eager attention for the text stack while extracting (only layer 0 runs), restored afterwards.

        The implementation is read from the text config by the attention modules and by the causal-mask
        builder; both must agree (an eager layer with an sdpa mask would lose causality).
        """
        configs = {id(c): c for c in (self.first_layer.self_attn.config, _language_model(self.model).config)}
        saved = {key: config._attn_implementation for key, config in configs.items()}
        try:
            if self.force_eager:
                for config in configs.values():
                    config._attn_implementation = "eager"
            yield
        finally:
            for key, config in configs.items():
                config._attn_implementation = saved[key]

    def _no_weights_message(self) -> str:
        implementation = self.first_layer.self_attn.config._attn_implementation
        return (
            f"Layer 0 of {type(self.model).__name__} returned no attention probabilities (attention "
            f"implementation {implementation!r}). ScalSelect needs eager attention for that layer: keep "
            "force_eager=True, or load the model with attn_implementation='eager'."
        )

    def _to_device(self, value: Any) -> Any:
        if not hasattr(value, "to"):
            return value
        if value.is_floating_point():  # pixels take the model's dtype (fp16 / bf16)
            return value.to(self.device, dtype=self.model.dtype)
        return value.to(self.device)

    # -- one sample ----------------------------------------------------------------------------------------

    def represent(self, conversation: Any, images: list) -> SampleRepresentation:
        """The ScalSelect representation of one sample (conversation + its PIL images)."""
        import torch

        inputs, assistant = self.build_inputs(conversation, images)
        ids = inputs["input_ids"][0]
        mask = inputs.get("attention_mask", torch.ones_like(ids[None]))[0].bool()
        visual_mask = ids == self.image_token_id
        visual = torch.nonzero(visual_mask).flatten()
        if len(visual) == 0:
            raise RowFailure(_NO_VISUAL_TOKENS, "the rendered input holds no image token (truncated?)")
        user = torch.nonzero(mask & ~visual_mask & ~assistant).flatten()
        attention, hidden = self.layer0(inputs)
        vector, kept = pool_visual_tokens(hidden, attention, visual.to(hidden.device), user.to(hidden.device),
                                          self.tau)
        return SampleRepresentation(vector=vector, kept_tokens=kept, visual_tokens=len(visual))


def check_supported(model: Any) -> str:
    """The model's ``model_type`` if ScalSelect supports it; else an error listing the supported ones."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise CoresetInputError(
            f"ScalSelect does not support {type(model).__name__} (model_type={model_type!r}). Supported "
            f"architectures: {', '.join(sorted(SUPPORTED_ARCHITECTURES))}; load one of them with "
            "AutoModelForImageTextToText, or pass precomputed representations in embedding_columns."
        )
    return model_type


def _language_model(model: Any) -> Any:
    """The text decoder of a ``*ForConditionalGeneration`` (or of a bare base ``*Model``)."""
    base = getattr(model, "model", model)
    return getattr(base, SUPPORTED_ARCHITECTURES[model.config.model_type])


def decoder_layers(model: Any) -> Any:
    """The decoder layers (ModuleList) of the language model of a supported VLM."""
    return _language_model(model).layers


# --------------------------------------------------------------------------------------------------------
# Assistant spans: characters of the rendered text -> token positions of the processed input
# --------------------------------------------------------------------------------------------------------


def encode_conversation(processor: Any, model_type: str, conversation: Any, images: list) -> tuple[dict[str, Any], Any]:
    """One sample through the chat template and the processor: ``(model inputs for a batch of one,
    boolean (L,) mask of the assistant answer tokens)``. Shared by ScalSelect's stage A (the mask gives the
    user tokens) and the instruction-tuning collator (the mask gives the labels).

    Raises ``RowFailure`` for a conversation that cannot be rendered.
    """
    messages = to_chat_messages(conversation, len(images))
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    tokenizer = getattr(processor, "tokenizer", processor)
    # A template that already writes the BOS token must not get a second one from the tokenizer.
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and text.startswith(bos))
    nested = model_type in _NESTED_IMAGE_PROCESSORS
    inputs = processor(text=[text], images=[images] if nested else images, return_tensors="pt",
                       add_special_tokens=add_special)
    spans = _assistant_char_spans(text, messages)
    assistant = _assistant_token_mask(tokenizer, text, spans, inputs["input_ids"][0], add_special)
    return dict(inputs), assistant


def _assistant_char_spans(text: str, messages: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Character spans of each assistant answer in the rendered text, found in turn order."""
    spans, cursor = [], 0
    for message in messages:
        for item in message["content"]:
            if item["type"] != "text":
                continue
            start = text.find(item["text"], cursor)
            if start < 0:
                continue  # the template rewrote this text; no span for it
            end = start + len(item["text"])
            if message["role"] == "assistant":
                spans.append((start, end))
            cursor = end
    return spans


def _assistant_token_mask(tokenizer: Any, text: str, spans: list[tuple[int, int]], ids: Any,
                          add_special: bool) -> Any:
    """Boolean (L,) mask of the assistant tokens of the processed ``ids``.

    The processor expands each image marker into many image tokens, so positions are found on the plain
    tokenisation of ``text`` (which has character offsets) and carried over by aligning the tails of the
    two sequences: the images precede the answers, so the answers sit in the common tail.
    """
    import torch

    mask = torch.zeros(len(ids), dtype=torch.bool)
    if not spans:
        return mask
    plain = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    plain_ids, offsets = plain["input_ids"], plain["offset_mapping"]
    shift = len(ids) - len(plain_ids)
    tail = _common_tail(plain_ids, ids.tolist())
    for position, (start, end) in enumerate(offsets):
        if end > start and any(start < span_end and end > span_start for span_start, span_end in spans):
            if position < len(plain_ids) - tail:
                raise RowFailure(_BAD_CONVERSATION, "an image marker follows an assistant answer")
            mask[position + shift] = True
    return mask


def _common_tail(a: list[int], b: list[int]) -> int:
    count = 0
    while count < min(len(a), len(b)) and a[-1 - count] == b[-1 - count]:
        count += 1
    return count


# --------------------------------------------------------------------------------------------------------
# Dataset.map over a whole dataset, cached by fingerprint, sharded under accelerate
# --------------------------------------------------------------------------------------------------------


@dataclass
class VLMExtractionResult:
    """What :func:`extract_representations` returns.

    ``representations`` is (N, D) float32 with NaN rows where extraction failed; ``kept_tokens`` and
    ``visual_tokens`` count per row the kept and the total visual tokens (0 for failed rows);
    ``failed_rows`` maps a reason ("no_image", "unreadable_image", ...) to sorted dataset row indices;
    ``row_offset`` is the dataset row of this process's first row (0 when gathered or alone).
    """

    representations: np.ndarray
    kept_tokens: np.ndarray
    visual_tokens: np.ndarray
    failed_rows: dict[str, list[int]] = field(default_factory=dict)
    cache_hit: bool = False
    row_offset: int = 0

    def kept_token_summary(self) -> dict[str, Any]:
        """Kept-token statistics over the successful rows (for the selection diagnostics)."""
        good = self.visual_tokens > 0
        if not good.any():
            return {}
        kept, total = self.kept_tokens[good], self.visual_tokens[good]
        return {"kept_tokens_mean": float(kept.mean()), "kept_tokens_min": int(kept.min()),
                "kept_tokens_max": int(kept.max()), "kept_fraction_mean": float((kept / total).mean())}


def extract_representations(
    dataset: datasets.Dataset,
    model: Any,
    processor: Any,
    *,
    conversation_column: str | None = None,
    image_column: str | None = None,
    tau: float = 0.9,
    batch_size: int = 8,
    device: Any = None,
    cache_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
    on_error: str = "report",
    accelerator: Any = None,
    gather: bool = True,
) -> VLMExtractionResult:
    """ScalSelect stage A over a dataset: one representation per row, through the feature cache.

    The Arrow cache file is named after the dataset fingerprint, the two columns, the extractor
    fingerprint (weights, processor, chat template, tau) and, for images given by path, each file's size and
    modification time, so a second call reads it back without running the model, and an image replaced at the
    same path is read again. The file is whole or absent, and an interrupted run resumes after its last
    checkpoint (:mod:`hf_coreset.features.cache`, as for the encoders). Rows without an image, with an
    unreadable image or a malformed conversation get NaN rows and are listed in ``failed_rows``
    (``on_error="report"``), or raise naming the row (``"raise"``).
    Under ``accelerate launch`` pass the ``accelerator``: each process extracts a contiguous shard; with
    ``gather=True`` every process gets all rows in order, with ``gather=False`` only its shard
    (``row_offset`` says where it starts).

    Example (with ``model`` and ``processor`` as in :class:`VLMAttentionExtractor`; not run here):
        >>> ds = datasets.load_dataset("json", data_files="llava_v1_5_mix665k.json", split="train")  # doctest: +SKIP
        >>> result = extract_representations(ds, model, processor, image_column="image")  # doctest: +SKIP
        >>> result.representations.shape, {k: len(v) for k, v in result.failed_rows.items()}  # doctest: +SKIP
        ((665298, 4096), {'no_image': 40688})
    """
    if on_error not in ("report", "raise"):
        raise CoresetInputError(f"on_error={on_error!r} is not supported; use 'report' or 'raise'.")
    conversation_column = _resolve_column(dataset, conversation_column, CONVERSATION_COLUMNS, "conversation")
    image_column = _resolve_column(dataset, image_column, IMAGE_COLUMNS, "image")
    extractor = VLMAttentionExtractor(model, processor, tau=tau, device=device)
    shard, row_offset = _shard(dataset, accelerator)
    local = _extract_shard(shard, _BatchExtractor(extractor, conversation_column, image_column, on_error),
                           batch_size, prepare_cache_dir(cache_dir), show_progress, row_offset)
    if accelerator is None or accelerator.num_processes == 1 or not gather:
        return local
    return _gather(local, accelerator)


def _resolve_column(dataset: datasets.Dataset, column: str | None, defaults: tuple[str, ...], what: str) -> str:
    if column is None:
        column = next((name for name in defaults if name in dataset.column_names), None)
        if column is None:
            raise MissingColumnError(
                f"No {what} column found (looked for {list(defaults)}); the dataset's columns are "
                f"{dataset.column_names}. Pass {what}_column=... to name it."
            )
    if column not in dataset.column_names:
        raise MissingColumnError(
            f"{what}_column={column!r} is not a column of the dataset; its columns are {dataset.column_names}."
        )
    return column


def _shard(dataset: datasets.Dataset, accelerator: Any) -> tuple[datasets.Dataset, int]:
    """This process's contiguous shard (datasets' own split: the first shards get one extra row)."""
    if accelerator is None or accelerator.num_processes == 1:
        return dataset, 0
    processes, rank = accelerator.num_processes, accelerator.process_index
    shard = dataset.shard(num_shards=processes, index=rank, contiguous=True)
    base, extra = divmod(len(dataset), processes)
    return shard, rank * base + min(rank, extra)


def _extract_shard(dataset, batch_extractor, batch_size, cache_dir, show_progress, row_offset):
    extractor = batch_extractor.extractor
    conversation_column, image_column = batch_extractor.conversation_column, batch_extractor.image_column
    # Images given by path: their files' size and modification time are part of the key, so an image
    # replaced at the same path is read again (the dataset fingerprint covers the path strings only).
    key = Hasher.hash(("hf_coreset.vlm_attention", _CACHE_FORMAT_VERSION, dataset._fingerprint,
                       conversation_column, image_column, extractor.fingerprint, batch_extractor.on_error,
                       image_file_state(dataset, image_column)))
    features = datasets.Features({
        _EMBEDDING: float32_list_feature(), _FAILURE: datasets.Value("string"),
        _KEPT: datasets.Value("int32"), _VISUAL: datasets.Value("int32"),
    })
    with progress_bars(show_progress):
        # The feature cache of the encoders: whole or absent, resumed after an interruption, built once.
        mapped, cache_hit = cached_map(
            _undecoded_view(dataset, [conversation_column, image_column]), batch_extractor,
            os.path.join(cache_dir, f"vlm-attention-{key}.arrow"), features=features, batch_size=batch_size,
            desc=f"ScalSelect stage A with {type(extractor.model).__name__}",
        )
    failures = list(mapped[_FAILURE])
    matrix = read_embeddings(mapped, failures, conversation_column, "a VLM representation")
    grouped = {reason: [row_offset + row for row in rows] for reason, rows in group_failures(failures).items()}
    for reason, rows in grouped.items():
        logger.warning("%d row(s) have no ScalSelect representation (%s): rows %s%s. They are listed in "
                       "failed_rows[%r].", len(rows), reason, rows[:5], " ..." if len(rows) > 5 else "", reason)
    return VLMExtractionResult(
        representations=matrix, kept_tokens=np.asarray(mapped[_KEPT], dtype=np.int64),
        visual_tokens=np.asarray(mapped[_VISUAL], dtype=np.int64), failed_rows=grouped, cache_hit=cache_hit,
        row_offset=row_offset,
    )


def _undecoded_view(dataset: datasets.Dataset, columns: list[str]) -> datasets.Dataset:
    """Only the needed columns, images left undecoded so that one bad file fails one row, not a batch."""
    view = dataset.select_columns(columns)
    for column in columns:
        feature = view.features[column]
        if isinstance(feature, datasets.Image) and feature.decode:
            view = view.cast_column(column, datasets.Image(decode=False))
        inner = getattr(feature, "feature", None)
        if isinstance(inner, datasets.Image) and inner.decode:  # a list of images per row
            view = view.cast_column(column, type(feature)(datasets.Image(decode=False)))
    return view


def _gather(local: VLMExtractionResult, accelerator: Any) -> VLMExtractionResult:
    """All shards, in rank order (= row order), on every process."""
    from accelerate.utils import gather_object

    parts = gather_object([local])
    failed: dict[str, list[int]] = {}
    for part in parts:
        for reason, rows in part.failed_rows.items():
            failed.setdefault(reason, []).extend(rows)
    return VLMExtractionResult(
        representations=np.concatenate([part.representations for part in parts]),
        kept_tokens=np.concatenate([part.kept_tokens for part in parts]),
        visual_tokens=np.concatenate([part.visual_tokens for part in parts]),
        failed_rows=failed,
        cache_hit=all(part.cache_hit for part in parts),
    )


class _BatchExtractor:
    """The map function: one forward per row (batch size 1: no padding to mask, Qwen's rope stays exact).

    A class rather than a closure so that it pickles with the extractor and two strings.
    """

    def __init__(self, extractor: VLMAttentionExtractor, conversation_column: str, image_column: str,
                 on_error: str = "report"):
        self.extractor = extractor
        self.conversation_column = conversation_column
        self.image_column = image_column
        self.on_error = on_error

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {_EMBEDDING: [], _FAILURE: [], _KEPT: [], _VISUAL: []}
        for conversation, cell, row in zip(batch[self.conversation_column], batch[self.image_column], indices,
                                           strict=True):
            try:
                sample = self.extractor.represent(conversation, self._images(cell, row))
                values = (sample.vector.astype(np.float32), None, sample.kept_tokens, sample.visual_tokens)
            except RowFailure as failure:
                if self.on_error == "raise":
                    raise self._as_error(failure, row) from failure.__cause__
                logger.debug("Row %d: %s", row, failure)
                values = (None, failure.reason, 0, 0)
            for key, value in zip((_EMBEDDING, _FAILURE, _KEPT, _VISUAL), values, strict=True):
                out[key].append(value)
        return out

    def _as_error(self, failure: RowFailure, row: int) -> CoresetInputError:
        if failure.reason == UNREADABLE_IMAGE:
            return failure.as_error(row, self.image_column)
        return CoresetInputError(
            f"Row {row} has no ScalSelect representation ({failure.reason}: {failure.detail}). Fix or drop that "
            "row, or pass on_error='report' to give it a NaN row and list it in failed_rows."
        )

    def _images(self, cell: Any, row: int) -> list:
        cells = cell if isinstance(cell, list) else [cell]
        cells = [value for value in cells if value is not None]
        if not cells:
            raise RowFailure(_NO_IMAGE, "the row has no image")
        return [load_image(value, row, self.image_column) for value in cells]
