"""ScalSelect stage A: the hooked layer-0 path equals the full model, the tau rule, roles, Dataset.map."""

from __future__ import annotations

import io

import datasets
import numpy as np
import pytest
import torch

import hf_coreset
from hf_coreset import CoresetInputError
from hf_coreset.features.vlm_attention import (
    SUPPORTED_ARCHITECTURES,
    VLMAttentionExtractor,
    extract_representations,
    pool_visual_tokens,
    tau_prefix,
    to_chat_messages,
    visual_token_mass,
)
from hf_coreset.methods.scalselect import ScalSelectConfig, ScalSelectSelector, leverage_scores, top_m
from tests.tiny_vlms import BUILDERS, tiny_conversation, tiny_image, tiny_llava, tiny_llava_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _full_model_reference(model, inputs, assistant, tau: float = 0.9) -> np.ndarray:
    """The representation from a full forward with eager attention and every layer's outputs materialised."""
    with torch.no_grad():
        out = model(**inputs, output_attentions=True, output_hidden_states=True)
    ids = inputs["input_ids"][0]
    visual_mask = ids == model.config.image_token_id
    visual = torch.nonzero(visual_mask).flatten()
    user = torch.nonzero(~visual_mask & ~assistant).flatten()
    # hidden_states[1] is the raw output of layer 0 (the models have 2 layers: only the last one is normed).
    vector, _ = pool_visual_tokens(out.hidden_states[1][0], out.attentions[0][0].float().mean(0), visual, user, tau)
    return vector


@pytest.mark.parametrize("architecture", sorted(BUILDERS))
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_hooked_layer0_equals_full_model(architecture, attn_implementation):
    model, processor = BUILDERS[architecture](attn_implementation)
    reference_model, _ = BUILDERS[architecture]("eager")  # same seed: same weights
    extractor = VLMAttentionExtractor(model, processor, tau=0.9)
    for seed in range(2):
        conversation, images = tiny_conversation(seed), [tiny_image(seed)]
        sample = extractor.represent(conversation, images)
        inputs, assistant = extractor.build_inputs(conversation, images)
        expected = _full_model_reference(reference_model, inputs, assistant)
        diff = float(np.abs(sample.vector - expected).max())
        print(f"{architecture} ({attn_implementation}) max abs diff: {diff:.3g}")
        assert diff < 1e-5
        assert 1 <= sample.kept_tokens <= sample.visual_tokens
    # The switch to eager was temporary: the model keeps the implementation it was loaded with.
    assert extractor.first_layer.self_attn.config._attn_implementation == attn_implementation


def test_clear_error_when_attention_weights_cannot_be_captured():
    model, processor = tiny_llava("sdpa")
    extractor = VLMAttentionExtractor(model, processor, force_eager=False)
    with pytest.raises(CoresetInputError, match="eager"):
        extractor.represent(tiny_conversation(0), [tiny_image(0)])


def test_unsupported_architecture_lists_supported_ones():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                         num_attention_heads=2))
    with pytest.raises(CoresetInputError, match="Supported architectures: .*llava.*qwen2_vl") as error:
        VLMAttentionExtractor(model, processor=None)
    assert all(name in str(error.value) for name in SUPPORTED_ARCHITECTURES)


def test_tau_rule_on_hand_made_attention_profile():
    # Positions: 0 user, 1-4 visual, 5 user, 6 assistant. Users give the visual tokens 0.1, 0.5, 0.3, 0.1.
    attention = torch.zeros(7, 7)
    attention[0, 1:5] = torch.tensor([0.05, 0.25, 0.15, 0.05])
    attention[5, 1:5] = torch.tensor([0.15, 0.75, 0.45, 0.15])
    attention[6, 1:5] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # the assistant's attention must not count
    visual, user = torch.tensor([1, 2, 3, 4]), torch.tensor([0, 5])
    np.testing.assert_allclose(visual_token_mass(attention, user, visual), [0.1, 0.5, 0.3, 0.1])
    hidden = torch.arange(7, dtype=torch.float32)[:, None].repeat(1, 3)  # row j holds j
    vector, kept = pool_visual_tokens(hidden, attention, visual, user, tau=0.7)  # 0.5 + 0.3 > 0.7
    assert kept == 2 and np.allclose(vector, (2 + 3) / 2)
    vector, kept = pool_visual_tokens(hidden, attention, visual, user, tau=0.8)  # 0.8 does not exceed 0.8
    assert kept == 3 and np.allclose(vector, (2 + 3 + 1) / 3)
    assert pool_visual_tokens(hidden, attention, visual, user, tau=1.0)[1] == 4
    assert tau_prefix(np.array([0.25, 0.25, 0.25, 0.25]), 0.3).tolist() == [0, 1]  # ties: lower index first
    assert tau_prefix(np.array([1.0]), 0.9).tolist() == [0]
    # Users that give the visual tokens no attention at all: uniform mass, all tokens needed for tau=1.
    np.testing.assert_allclose(visual_token_mass(torch.zeros(7, 7), user, visual), [0.25] * 4)


def test_token_roles_on_tiny_llava():
    model, processor = tiny_llava()
    extractor = VLMAttentionExtractor(model, processor)
    conversation = [{"from": "human", "value": "<image>\nwhat is it ?"}, {"from": "gpt", "value": "a red cat ."},
                    {"from": "human", "value": "and the dog ?"}, {"from": "gpt", "value": "no ."}]
    inputs, assistant = extractor.build_inputs(conversation, [tiny_image(0)])
    tokens = processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert [t for t, a in zip(tokens, assistant.tolist(), strict=True) if a] == ["a", "red", "cat", ".", "no", "."]
    n_visual = int((inputs["input_ids"][0] == model.config.image_token_id).sum())
    assert n_visual == 16  # (16 / 4)^2 patches, CLS dropped


def test_conversation_formats():
    llava = [{"from": "human", "value": "What is it?\n<image>"}, {"from": "gpt", "value": "A cat."}]
    openai = [{"role": "system", "content": "Be brief."},
              {"role": "user", "content": [{"type": "text", "text": "What is it?"}, {"type": "image"}]},
              {"role": "assistant", "content": "A cat."}]
    expected_user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}
    assert to_chat_messages(llava, 1)[0] == expected_user
    converted = to_chat_messages(openai, 1)
    assert converted[1] == expected_user and converted[0]["role"] == "system"
    assert converted[2] == {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}


def _png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    tiny_image(seed).save(buffer, format="PNG")
    return buffer.getvalue()


def test_extract_representations_reports_bad_rows_and_caches(tmp_path):
    model, processor = tiny_llava()
    images = [{"bytes": _png_bytes(i), "path": None} for i in range(5)]
    images[1] = None  # no image
    images[3] = {"bytes": b"not an image", "path": None}  # unreadable
    conversations = [tiny_conversation(i) for i in range(5)]
    conversations[4] = [{"role": "user", "content": "<image> what is it ?"},
                        {"role": "assistant", "content": "a cat ."}]
    # Both conversation formats in one column (Arrow gives every turn the union of the keys, None-filled).
    ds = datasets.Dataset.from_dict({"messages": conversations, "image": images})
    ds = ds.cast_column("image", datasets.Image())
    result = extract_representations(ds, model, processor, cache_dir=tmp_path, show_progress=False, batch_size=2)
    assert result.failed_rows == {"no_image": [1], "unreadable_image": [3]}
    assert np.isnan(result.representations[[1, 3]]).all() and np.isfinite(result.representations[[0, 2, 4]]).all()
    direct = VLMAttentionExtractor(model, processor).represent(conversations[2], [tiny_image(2)])
    np.testing.assert_allclose(result.representations[2], direct.vector, atol=1e-6)
    assert result.kept_tokens[2] == direct.kept_tokens and not result.cache_hit
    again = extract_representations(ds, model, processor, cache_dir=tmp_path, show_progress=False, batch_size=2)
    assert again.cache_hit
    np.testing.assert_array_equal(again.representations, result.representations)
    with pytest.raises(CoresetInputError, match="Row 1 has no ScalSelect representation .no_image"):
        extract_representations(ds, model, processor, cache_dir=tmp_path, show_progress=False, on_error="raise")


def test_scalselect_stage_a_then_b(tmp_path):
    model, processor = tiny_llava()
    ds = tiny_llava_dataset(12)
    config = ScalSelectConfig(model=model, processor=processor, rho=0.9)
    computed = ScalSelectSelector.features_from_dataset(config, ds, cache_dir=str(tmp_path), show_progress=False)
    assert computed.dropped_rows == {}
    features = hf_coreset.FeatureSet(n_rows=12, blocks=computed.blocks, diagnostics=computed.diagnostics)
    selector = ScalSelectSelector(config).fit(features, 4)
    expected = top_m(leverage_scores(next(iter(computed.blocks.values()))).scores, 4)[0]
    np.testing.assert_array_equal(selector.indices_, expected)
    assert selector.diagnostics_["kept_tokens_max"] <= 16 and "k" in selector.diagnostics_
    assert config.to_dict()["model"].startswith("LlavaForConditionalGeneration")


def test_select_coreset_with_model(tmp_path):
    model, processor = tiny_llava()
    ds = tiny_llava_dataset(10)
    core = hf_coreset.select_coreset(ds, "scalselect", 3, model=model, processor=processor, cache_dir=str(tmp_path))
    result = hf_coreset.get_selection_result(core)
    assert core.num_rows == 3 and "kept_tokens_mean" in result.diagnostics


def test_an_image_replaced_at_the_same_path_is_read_again(tmp_path):
    import os

    model, processor = tiny_llava()
    paths = [tmp_path / f"{i}.bmp" for i in range(3)]  # BMP: the same file size whatever the pixels
    for i, path in enumerate(paths):
        tiny_image(i).save(path)

    def dataset():  # several images per row are a list column: its paths count too
        return datasets.Dataset.from_dict(
            {"conversations": [tiny_conversation(i) for i in range(3)], "images": [[str(p)] for p in paths]},
            features=datasets.Features({
                "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
                "images": [datasets.Image()],
            }))

    def extract():
        return extract_representations(dataset(), model, processor, image_column="images", cache_dir=tmp_path,
                                       show_progress=False)

    first = extract()
    before = paths[1].stat()
    tiny_image(7).save(paths[1])  # same path, same size, new pixels, written later
    os.utime(paths[1], ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert paths[1].stat().st_size == before.st_size
    second = extract()
    assert not second.cache_hit
    direct = VLMAttentionExtractor(model, processor).represent(tiny_conversation(1), [tiny_image(7)])
    np.testing.assert_allclose(second.representations[1], direct.vector, atol=1e-6)
    assert not np.allclose(second.representations[1], first.representations[1])
    np.testing.assert_array_equal(second.representations[[0, 2]], first.representations[[0, 2]])
    assert extract().cache_hit  # untouched files: the cache hits
