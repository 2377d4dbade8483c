"""ScalSelect stage A: peak memory of the hooked layer-0 path vs the full ``output_attentions=True`` forward.

Each path runs in its own subprocess on the same tiny-but-deep random LLaVA (16 decoder layers, 8 heads) and
the same long sample (a 256-patch image and a long conversation). The peak resident memory of the forward
is measured from the kernel's high-water mark (``/proc/self/status`` VmHWM, reset through
``/proc/self/clear_refs`` just before the forward, Linux only), minus the resident memory before it.
Prints a Markdown table.

    python benchmarks/vlm_attention_memory.py                  # 16 layers, ~1,500 tokens
    python benchmarks/vlm_attention_memory.py --layers 32 --words 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def deep_llava(layers: int):
    """A LLaVA with a 16 x 16 patch grid (256 visual tokens) and ``layers`` decoder layers, eager attention."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    sys.path.insert(0, ROOT)
    from tests.tiny_vlms import _template, tiny_tokenizer

    tokenizer = tiny_tokenizer(["<image>"])
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=64, patch_size=4)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                       num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=8192, pad_token_id=0)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.set_attn_implementation("eager")
    processor = LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 64},
                                                                     crop_size={"height": 64, "width": 64}),
                               tokenizer=tokenizer, patch_size=4, vision_feature_select_strategy="default",
                               chat_template=_template("<image>"), num_additional_image_tokens=1)
    return model, processor


def _kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def measure(path: str, layers: int, words: int) -> dict:
    """Run one path once (after a warm-up on a short sample) and return its peak extra memory and time."""
    import torch

    sys.path.insert(0, ROOT)
    from hf_coreset.features.vlm_attention import VLMAttentionExtractor
    from tests.tiny_vlms import WORDS, tiny_image

    torch.set_num_threads(1)
    model, processor = deep_llava(layers)
    extractor = VLMAttentionExtractor(model, processor)
    question = " ".join(WORDS[i % 24] for i in range(words))
    conversation = [{"from": "human", "value": f"<image>\n{question} ?"}, {"from": "gpt", "value": "a cat ."}]
    inputs, _ = extractor.build_inputs(conversation, [tiny_image(0, (64, 64))])

    def run(sample_inputs):
        if path == "hooked":
            return extractor.layer0(sample_inputs)
        with torch.inference_mode():
            return model(**sample_inputs, output_attentions=True, output_hidden_states=True)

    run(extractor.build_inputs(conversation[:1], [tiny_image(1, (64, 64))])[0])  # warm-up: lazy inits, pools
    before = _kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current RSS
    start = time.perf_counter()
    out = run(inputs)
    seconds = time.perf_counter() - start
    peak = _kib("VmHWM")
    del out
    return {"path": path, "tokens": int(inputs["input_ids"].shape[1]), "peak_extra_mib": (peak - before) / 1024,
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--words", type=int, default=1200, help="words in the user turn (sets the length)")
    parser.add_argument("--path", choices=["hooked", "full"], help=argparse.SUPPRESS)  # subprocess mode
    args = parser.parse_args()
    if args.path:
        print(json.dumps(measure(args.path, args.layers, args.words)))
        return

    rows = {}
    for path in ("full", "hooked"):
        command = [sys.executable, __file__, "--path", path, "--layers", str(args.layers), "--words", str(args.words)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows[path] = json.loads(output.strip().splitlines()[-1])
    full, hooked = rows["full"], rows["hooked"]
    print(f"ScalSelect stage A memory, random LLaVA with {args.layers} decoder layers (8 heads, hidden 64), "
          f"{full['tokens']:,} tokens (256 visual), one sample, CPU\n")
    print("| path | peak extra memory (MiB) | ratio | forward time (s) |")
    print("|---|---:|---:|---:|")
    print(f"| full forward, output_attentions + output_hidden_states | {full['peak_extra_mib']:.1f} | "
          f"{full['peak_extra_mib'] / hooked['peak_extra_mib']:.1f}x | {full['seconds']:.2f} |")
    print(f"| hf_coreset hooked vision + projector + layer 0 | {hooked['peak_extra_mib']:.1f} | 1.0x | "
          f"{hooked['seconds']:.2f} |")


if __name__ == "__main__":
    main()
