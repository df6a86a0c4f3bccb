"""Shared helpers for tests that need a real (tiny) student model.

``tiny-llama-test`` is a 2-layer randomly initialised Llama with the real SmolLM2 tokenizer,
built once into the model cache; it runs in milliseconds per forward pass on the CPU.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from baldistill_core.task import prompts
from baldistill_core.student import model as student  # noqa: E402

TEXTS = [
    "Wheat exports rose sharply in March as prices fell.",
    "The central bank cut interest rates by half a point.",
    "Crude oil output",
    "Shares of the mining company jumped after it reported record gold production for the quarter.",
    "Cocoa arrivals at the ports were lower than expected because of the drought in the growing zone.",
    "Trade deficit widened.",
    "The company said its board approved a two-for-one stock split and raised the quarterly dividend.",
    "Sugar beet planting was delayed by cold weather across northern Europe this spring.",
    "Coffee",
    "Copper prices hit a three-year high on strong demand from manufacturers.",
    "The merger talks between the two airlines ended without an agreement.",
    "Natural gas reserves in the region were revised upward by ten percent.",
]

INSTRUCTION = "Classify the news story into exactly one topic from this set: grain, money, crude, gold, cocoa."


def prompt_for(text: str) -> str:
    return prompts.student_prompt(INSTRUCTION, text, "classification")


def tiny_prompts(n: int = len(TEXTS)) -> list[str]:
    return [prompt_for(t) for t in TEXTS[:n]]


def tiny_examples(n: int = 8) -> list[dict]:
    labels = ["grain", "money", "crude", "gold", "cocoa"]
    return [
        {"prompt": prompt_for(TEXTS[i % len(TEXTS)]),
         "completion": prompts.training_completion(f"The story is about {labels[i % 5]}.", labels[i % 5])}
        for i in range(n)
    ]


@functools.lru_cache(maxsize=1)
def tiny_path():
    return student.resolve_model(student.TINY_TEST)


@functools.lru_cache(maxsize=1)
def tiny_model():
    """(model, tokenizer) in eval mode; shared, so tests must not modify it."""
    return student.load_model(tiny_path())
