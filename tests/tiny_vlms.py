"""Tiny random VLMs (LLaVA, Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Idefics3) and offline processors: no downloads.

Each builder returns ``(model, processor)``. The tokenizers are WordLevel tokenizers over a small vocabulary
plus the special tokens the processor expects, with a minimal chat template that renders images first.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

WORDS = ["what", "is", "in", "the", "image", "a", "cat", "dog", "red", "blue", "yes", "no", "describe", "it",
         "there", "are", "two", "one", "picture", "of", "and", "?", ".", ",", ":", "user", "assistant", "system"]

# Jinja chat template (role: content per turn, images rendered first as the processor's image token).
_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} :"
    "{% if message['content'] is string %} {{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %} IMAGE_MARKUP{% elif item['type'] == 'text' %} {{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %} <eot> {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def tiny_tokenizer(special_tokens: list[str]) -> PreTrainedTokenizerFast:
    """A WordLevel tokenizer: pad=0, unk=1, eot=2, then the special tokens, then ``WORDS``."""
    vocab = {"<pad>": 0, "<unk>": 1, "<eot>": 2}
    for token in [*special_tokens, *WORDS]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<eot>",
        additional_special_tokens=special_tokens,
    )
    return tokenizer


def _template(image_markup: str) -> str:
    return _TEMPLATE.replace("IMAGE_MARKUP", image_markup)


def tiny_llava(attn_implementation: str = "eager", num_layers: int = 2, seed: int = 0):
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = tiny_tokenizer(["<image>"])
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              image_size=16, patch_size=4, projection_dim=16)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                       num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=2048, pad_token_id=0)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.set_attn_implementation(attn_implementation)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=4,
                               vision_feature_select_strategy="default", chat_template=_template("<image>"),
                               num_additional_image_tokens=1)
    return model, processor


def tiny_qwen2_vl(attn_implementation: str = "eager", num_layers: int = 2, seed: int = 0):
    return _tiny_qwen("qwen2_vl", attn_implementation, num_layers, seed)


def tiny_qwen2_5_vl(attn_implementation: str = "eager", num_layers: int = 2, seed: int = 0):
    return _tiny_qwen("qwen2_5_vl", attn_implementation, num_layers, seed)


def tiny_qwen3_vl(attn_implementation: str = "eager", num_layers: int = 2, seed: int = 0):
    return _tiny_qwen("qwen3_vl", attn_implementation, num_layers, seed)


def _qwen_classes(kind: str):
    import transformers

    prefix = {"qwen2_vl": "Qwen2VL", "qwen2_5_vl": "Qwen2_5_VL", "qwen3_vl": "Qwen3VL"}[kind]
    return (getattr(transformers, f"{prefix}Config"), getattr(transformers, f"{prefix}ForConditionalGeneration"),
            getattr(transformers, f"{prefix}Processor"))


def _qwen_vision_config(kind: str) -> dict:
    common = {"depth": 2, "num_heads": 2, "patch_size": 4, "spatial_merge_size": 2, "temporal_patch_size": 2}
    if kind == "qwen2_vl":
        return {**common, "embed_dim": 16, "hidden_size": 32, "mlp_ratio": 2}
    if kind == "qwen2_5_vl":  # window attention in block 0, full attention in block 1
        return {**common, "hidden_size": 16, "intermediate_size": 32, "out_hidden_size": 32, "window_size": 16,
                "fullatt_block_indexes": [1]}
    # qwen3_vl: deepstack features from vision block 0 are added after decoder layer 0
    return {**common, "hidden_size": 16, "intermediate_size": 32, "out_hidden_size": 32,
            "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}


def _tiny_qwen(kind: str, attn_implementation: str, num_layers: int, seed: int):
    """Qwen2-VL / Qwen2.5-VL / Qwen3-VL: multimodal rope (mrope) with sections (1, 1, 2) of the head dim 8."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    config_class, model_class, processor_class = _qwen_classes(kind)
    tokenizer = tiny_tokenizer(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
    ids = tokenizer.convert_tokens_to_ids
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]}
    if kind == "qwen3_vl":
        rope["mrope_interleaved"] = True
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "head_dim": 8,
            "num_hidden_layers": num_layers, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 2048, "pad_token_id": 0, "rope_parameters": rope}
    config = config_class(text_config=text, vision_config=_qwen_vision_config(kind),
                          image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                          vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.set_attn_implementation(attn_implementation)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=16 * 16, max_pixels=32 * 32, patch_size=4,
                                               temporal_patch_size=2, merge_size=2)
    processor = _without_video_processor(processor_class)(
        image_processor=image_processor, tokenizer=tokenizer,
        chat_template=_template("<|vision_start|> <|image_pad|> <|vision_end|>"))
    return model, processor


def _without_video_processor(processor_class):
    """The Qwen processor class, accepting no video processor (that one needs torchvision, absent here)."""

    class TinyQwenProcessor(processor_class):
        def check_argument_for_proper_class(self, argument_name, argument):
            if argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    return TinyQwenProcessor


def tiny_idefics3(attn_implementation: str = "eager", num_layers: int = 2, seed: int = 0):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tokenizer = tiny_tokenizer(["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"])
    text = {"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": num_layers, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 2048, "pad_token_id": 0}
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 16, "patch_size": 4}
    config = Idefics3Config(text_config=text, vision_config=vision, scale_factor=2,
                            image_token_id=tokenizer.convert_tokens_to_ids("<image>"), pad_token_id=0)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.set_attn_implementation(attn_implementation)
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 16}, max_image_size={"longest_edge": 16},
                                                do_image_splitting=False)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                  chat_template=_template("<image>"))
    return model, processor


BUILDERS = {"llava": tiny_llava, "qwen2_vl": tiny_qwen2_vl, "qwen2_5_vl": tiny_qwen2_5_vl, "qwen3_vl": tiny_qwen3_vl,
            "idefics3": tiny_idefics3}


def tiny_image(seed: int, size: tuple[int, int] = (20, 24)):
    """A random RGB PIL image (different seeds give different images)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def tiny_conversation(seed: int) -> list[dict[str, str]]:
    """A two-turn LLaVA-format conversation over the tiny vocabulary."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = lambda n: " ".join(rng.choice(WORDS[:24], size=n))  # noqa: E731
    return [{"from": "human", "value": f"<image>\n{words(5)} ?"}, {"from": "gpt", "value": f"{words(4)} ."},
            {"from": "human", "value": f"{words(3)} ?"}, {"from": "gpt", "value": f"{words(2)} ."}]


def tiny_llava_dataset(n_rows: int, seed: int = 0, missing_images: tuple[int, ...] = ()):
    """A LLaVA-format dataset (``conversations`` + ``image``) with ``n_rows`` distinct rows; the rows in
    ``missing_images`` have no image."""
    import datasets

    return datasets.Dataset.from_dict(
        {"conversations": [tiny_conversation(seed + i) for i in range(n_rows)],
         "image": [None if i in missing_images else tiny_image(seed + i) for i in range(n_rows)]},
        features=datasets.Features({
            "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
            "image": datasets.Image(),
        }),
    )
