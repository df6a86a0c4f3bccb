"""The one student view of an example: the clipped input inside the one prompt template.

Training, IFD scoring, the stage preview, evaluation and export all build the student's prompt
through :class:`StudentView`, so a prompt ranked on the Plan page is the prompt the run trains on,
scores and evaluates, and the prompt an export ships. Build it once per run (``runs.context``).
"""

from __future__ import annotations

import hashlib
from typing import Callable

from baldistill_core.task.prompts import student_prompt, task_instruction, training_completion


def prompt_hash(prompt: str) -> str:
    """A short, stable digest of an exact prompt (part of every IFD cache key).

    >>> prompt_hash("a") == prompt_hash("a") != prompt_hash("b")
    True
    """
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


class StudentView:
    """What the student sees: ``instruction`` + input clipped to ``max_input_tokens`` + the step cue.

    ``load_tokenizer`` is called once, and only when an input may be longer than the clip (a token
    is at least one character, so shorter texts are never tokenized).

    >>> v = StudentView("math", "Solve it.")
    >>> v.prompt({"input": "1+1?"})
    "Solve it.\\n\\nProblem: 1+1?\\n\\nLet's think step by step.\\n"
    """

    def __init__(self, task_type: str, instruction: str, *, max_input_tokens: int | None = None,
                 load_tokenizer: Callable[[], object] | None = None):
        self.task_type = task_type
        self.instruction = instruction
        self.max_input_tokens = max_input_tokens
        self._load_tokenizer = load_tokenizer
        self._tokenizer = None

    @classmethod
    def for_dataset(cls, spec, labels: list[str] | None, *, max_input_tokens: int | None = None,
                    load_tokenizer: Callable[[], object] | None = None) -> "StudentView":
        """The view of a dataset spec (task type, instruction with its label set filled in)."""
        instr = task_instruction(spec.task_type, spec.instruction, labels)
        return cls(spec.task_type, instr, max_input_tokens=max_input_tokens, load_tokenizer=load_tokenizer)

    def clip(self, text: str) -> str:
        """``text`` cut to its first ``max_input_tokens`` tokens (unchanged when shorter or no clip)."""
        limit = self.max_input_tokens
        if not limit or len(text) <= limit:
            return text
        if self._tokenizer is None:
            if self._load_tokenizer is None:
                from baldistill_core.errors import ConfigError

                raise ConfigError("max_input_tokens is set but this student view has no tokenizer; "
                                  "build the view with runs.context.RunContext")
            self._tokenizer = self._load_tokenizer()
        enc = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) <= limit:
            return text
        return text[:enc["offset_mapping"][limit - 1][1]].rstrip()

    def prompt(self, example: dict) -> str:
        """The prompt of an example (``{"input": ...}``), up to and including the step cue."""
        return student_prompt(self.instruction, self.clip(example["input"]), self.task_type)

    def prompts(self, examples: list[dict]) -> list[str]:
        return [self.prompt(e) for e in examples]

    def completion(self, rationale: str, answer: str, *, cot: bool = True) -> str:
        """The completion the loss is computed on (the rationale + answer sentence, or the answer only)."""
        return training_completion(rationale, answer, cot=cot)

    def training_pair(self, row: dict, *, cot: bool = True) -> dict:
        """``{prompt, completion}`` of a kept training row (``input``, ``answer``, ``rationale``)."""
        return dict(prompt=self.prompt(row), completion=self.completion(row["rationale"], row["answer"], cot=cot))

    def scoring_item(self, example: dict) -> dict:
        """``{key, prompt}`` for the IFD scorer; the cache key adds the prompt's hash."""
        return dict(key=example["id"], prompt=self.prompt(example))
