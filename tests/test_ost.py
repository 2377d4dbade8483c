"""OST: exact utility against a hand-rolled step-and-evaluate, first order against exact, an untouched proxy,
the redundancy greedy against a naive one, the harmful-row filter and the errors."""

from __future__ import annotations

import copy

import datasets
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

import hf_coreset
from hf_coreset.errors import CoresetInputError
from hf_coreset.methods.ost import OSTConfig, drop_harmful, ost_utilities
from hf_coreset.methods.ost.selector import redundancy_greedy

from .conftest import make_embedding_dataset


def tiny_bert_classifier(seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=3,
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    return BertForSequenceClassification(config)


def token_rows(n_rows: int, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    return datasets.Dataset.from_dict({"input_ids": rng.integers(1, 40, size=(n_rows, 6)).tolist(),
                                       "label": rng.integers(0, 3, size=n_rows).tolist()})


def collate_tokens(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.tensor([r["input_ids"] for r in rows]),
            "labels": torch.tensor([r["label"] for r in rows])}


def hand_rolled_utility(model, row: dict, anchor: datasets.Dataset, eta: float) -> float:
    """Copy the model, take one SGD step on the row, compare the anchor loss before and after."""
    anchor_batch = collate_tokens(list(anchor))
    stepped = copy.deepcopy(model).eval()
    with torch.no_grad():
        before = float(stepped(**anchor_batch).loss)
    stepped(**collate_tokens([row])).loss.backward()
    with torch.no_grad():
        for p in stepped.parameters():
            if p.requires_grad:
                p -= eta * p.grad
        return before - float(stepped(**anchor_batch).loss)


def proxy_options(model, anchor, **extra):
    return dict(proxy=model, collate_fn=collate_tokens, anchor=anchor, warmup_fraction=0.0, scoring_batch_size=4,
                **extra)


def test_exact_utility_equals_hand_rolled_step_and_evaluate():
    model, pool, anchor = tiny_bert_classifier(), token_rows(10), token_rows(6, seed=1)
    scores = ost_utilities(pool, show_progress=False, **proxy_options(model, anchor, estimator="exact",
                                                                      learning_rate=0.05))
    expected = [hand_rolled_utility(model, pool[i], anchor, 0.05) for i in range(10)]
    np.testing.assert_allclose(scores.utilities, expected, rtol=1e-4, atol=1e-6)
    assert scores.harmful_rows == [i for i in range(10) if expected[i] < 0]
    assert scores.diagnostics["anchor_rows"] == 6


def test_first_order_ranks_like_exact_at_small_step():
    model, pool, anchor = tiny_bert_classifier(), token_rows(30), token_rows(8, seed=1)
    exact = ost_utilities(pool, show_progress=False, **proxy_options(model, anchor, estimator="exact",
                                                                     learning_rate=1e-3)).utilities
    first = ost_utilities(pool, show_progress=False, **proxy_options(model, anchor, learning_rate=1e-3)).utilities
    assert spearmanr(exact, first).statistic > 0.9


def test_proxy_parameters_and_mode_untouched_by_warm_up_and_scoring():
    model, pool = tiny_bert_classifier(), token_rows(20)
    model.train()
    before = copy.deepcopy(model.state_dict())
    for estimator in ("first_order", "exact"):
        hf_coreset.select_coreset(pool, "ost", 5, proxy=model, collate_fn=collate_tokens, warmup_fraction=0.5,
                                  anchor_fraction=0.25, estimator=estimator, preconditioner="adam",
                                  show_progress=False)
    assert model.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_peft_lora_proxy_scores_only_adapter_parameters():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_bert_classifier(), LoraConfig(r=2, target_modules=["query", "value"],
                                                              task_type="SEQ_CLS"))
    core = hf_coreset.select_coreset(token_rows(12), "ost", 4, **proxy_options(model, token_rows(4, seed=1)),
                                     show_progress=False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = hf_coreset.get_selection_result(core)
    assert result.diagnostics["trainable_parameters"] == trainable < sum(p.numel() for p in model.parameters())
    assert result.provenance["config"]["proxy"].startswith("PeftModel")


def test_vmap_and_loop_give_the_same_utilities():
    ds = make_embedding_dataset(60)
    vmapped = ost_utilities(ds, embedding_columns=["img_emb", "txt_emb"], per_sample_gradients="vmap",
                            show_progress=False)
    looped = ost_utilities(ds, embedding_columns=["img_emb", "txt_emb"], per_sample_gradients="loop",
                           show_progress=False)
    assert (vmapped.diagnostics["per_sample_gradients"], looped.diagnostics["per_sample_gradients"]) == ("vmap", "loop")
    np.testing.assert_allclose(vmapped.utilities, looped.utilities, rtol=1e-4, atol=1e-9)


class ItemCallingModel(nn.Module):
    """A proxy whose forward calls ``.item()``: fine for autograd, impossible under vmap."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x, y):
        scale = 1.0 + 0.0 * x.abs().max().item()
        return ((self.linear(x)[:, 0] * scale - y) ** 2).mean()


def xy_rows(n_rows: int) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    return datasets.Dataset.from_dict({"x": rng.normal(size=(n_rows, 3)).tolist(), "y": rng.normal(size=n_rows)})


def collate_xy(rows):
    return {"x": torch.tensor([r["x"] for r in rows], dtype=torch.float32),
            "y": torch.tensor([r["y"] for r in rows], dtype=torch.float32)}


def test_auto_falls_back_to_the_loop_and_says_so_while_vmap_alone_fails_clearly():
    options = dict(proxy=ItemCallingModel(), collate_fn=collate_xy, anchor_fraction=0.2, show_progress=False)
    scores = ost_utilities(xy_rows(12), **options)
    assert scores.diagnostics["per_sample_gradients"] == "loop" and "vmap_fallback_reason" in scores.diagnostics
    with pytest.raises(CoresetInputError, match="per_sample_gradients='loop'"):
        ost_utilities(xy_rows(12), per_sample_gradients="vmap", **options)


def test_same_seed_same_indices_other_seed_other_anchor():
    ds = make_embedding_dataset(80)
    pick = [hf_coreset.get_selection_result(hf_coreset.select_coreset(
        ds, "ost", 10, embedding_columns=["img_emb", "txt_emb"], seed=s, show_progress=False)) for s in (0, 0, 1)]
    np.testing.assert_array_equal(pick[0].indices, pick[1].indices)
    np.testing.assert_array_equal(pick[0].scores, pick[1].scores)
    assert not np.array_equal(pick[0].scores, pick[2].scores)


def test_ranking_is_by_descending_utility():
    ds = make_embedding_dataset(50)
    scores = ost_utilities(ds, embedding_columns=["img_emb", "txt_emb"], show_progress=False)
    result = hf_coreset.get_selection_result(hf_coreset.select_coreset(
        ds, "ost", 12, embedding_columns=["img_emb", "txt_emb"], show_progress=False))
    np.testing.assert_array_equal(result.indices, np.argsort(-scores.utilities, kind="stable")[:12])
    assert result.diagnostics["harmful_rows"] == len(scores.harmful_rows)


def test_redundancy_greedy_matches_a_naive_recomputation():
    rng = np.random.default_rng(0)
    utilities, sketches, eta = rng.normal(size=40), rng.normal(size=(40, 7)), 0.3
    indices, gains = redundancy_greedy(utilities, sketches, 10, eta)
    chosen: list[int] = []
    for step in range(10):
        naive = [utilities[i] - eta ** 2 * sum(sketches[i] @ sketches[j] for j in chosen)
                 if i not in chosen else -np.inf for i in range(40)]
        chosen.append(int(np.argmax(naive)))
        assert gains[step] == pytest.approx(max(naive))
    assert indices.tolist() == chosen


def test_redundancy_through_select_coreset_starts_from_the_best_row_then_discounts():
    ds = make_embedding_dataset(40)
    scores = ost_utilities(ds, embedding_columns=["img_emb", "txt_emb"], show_progress=False)
    result = hf_coreset.get_selection_result(hf_coreset.select_coreset(
        ds, "ost", 8, embedding_columns=["img_emb", "txt_emb"], redundancy=True, show_progress=False))
    assert result.indices[0] == int(np.argmax(scores.utilities))
    assert result.scores[0] == pytest.approx(scores.utilities.max())
    # Later gains carry the redundancy term (an inner product with the picked gradients, of either sign).
    assert result.diagnostics["redundancy"] is True
    assert not np.allclose(result.scores[1:], scores.utilities[result.indices[1:]])


def test_drop_harmful_keeps_exactly_the_non_negative_rows_and_caches():
    ds = make_embedding_dataset(50)
    scores = ost_utilities(ds, embedding_columns=["img_emb", "txt_emb"], show_progress=False)
    assert 0 < len(scores.harmful_rows) < 50
    kept = drop_harmful(ds, scores.utilities)
    expected = [i for i in range(50) if scores.utilities[i] >= 0]
    assert kept["caption"] == [f"caption {i}" for i in expected]
    assert drop_harmful(ds, scores.utilities)._fingerprint == kept._fingerprint
    with pytest.raises(CoresetInputError, match="49 utilities for a dataset of 50 rows"):
        drop_harmful(ds, scores.utilities[:49])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(estimator="second_order"), "estimator must be one of"),
        (dict(learning_rate=0), "learning_rate must be a positive float"),
        (dict(anchor_fraction=0.0), "needs an anchor set"),
        (dict(preconditioner="adam", warmup_fraction=0.0), "set warmup_fraction > 0"),
        (dict(proxy=nn.Linear(2, 2)), "proxy= needs collate_fn="),
        (dict(collate_fn=collate_xy), "only apply with proxy="),
    ],
)
def test_bad_options_fail_before_any_work(options, message):
    with pytest.raises(CoresetInputError, match=message):
        OSTConfig(**options)


def test_bad_inputs_name_the_problem_and_the_fix():
    ds = make_embedding_dataset(20)
    with pytest.raises(CoresetInputError, match="exactly two embedding columns"):
        hf_coreset.select_coreset(ds, "ost", 5, embedding_columns=["img_emb"], show_progress=False)
    frozen = ItemCallingModel().requires_grad_(False)
    with pytest.raises(CoresetInputError, match="no trainable parameters.*get_peft_model"):
        hf_coreset.select_coreset(xy_rows(10), "ost", 2, proxy=frozen, collate_fn=collate_xy, show_progress=False)
    no_loss = nn.Linear(3, 1)
    with pytest.raises(CoresetInputError, match="without a loss.*loss_fn="):
        hf_coreset.select_coreset(xy_rows(10), "ost", 2, proxy=no_loss, collate_fn=lambda rows: {
            "input": torch.tensor([r["x"] for r in rows], dtype=torch.float32)}, show_progress=False)
