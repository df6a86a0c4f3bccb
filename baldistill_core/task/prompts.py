"""Prompt templates shared by training, IFD scoring and evaluation.

The student is trained, scored (IFD) and evaluated with one template, ``student_prompt`` — the
released BalDistill code scored IFD with a different prompt than it trained on; we do not.
Teacher templates (rationales, synthesis, verification) live in ``teacher_prompts``.
"""

from __future__ import annotations

STEP = "Let's think step by step."
ANSWER_PREFIX = "The answer is:"

INPUT_LABEL = {
    "classification": "News story",
    "math": "Problem",
    "multiple_choice": "Question",
    "qa": "Question",
}

DEFAULT_INSTRUCTION = {
    "classification": "Classify the text into exactly one label from this set: {labels}.",
    "math": "Solve the following math problem.",
    "multiple_choice": "Answer the multiple-choice question with the letter of the correct choice.",
    "qa": "Answer the question.",
}


def task_instruction(task_type: str, instruction: str | None, labels: list[str] | None = None) -> str:
    """The task instruction with the label set filled in.

    >>> task_instruction("classification", "Pick one of: {labels}.", ["a", "b"])
    'Pick one of: a, b.'
    """
    text = instruction or DEFAULT_INSTRUCTION[task_type]
    if "{labels}" in text:
        text = text.replace("{labels}", ", ".join(labels or []))
    return text


def student_prompt(instruction: str, text: str, task_type: str = "classification") -> str:
    """The prompt up to and including "Let's think step by step." (the IFD condition x).

    >>> student_prompt("Solve it.", "1+1?", "math")
    "Solve it.\\n\\nProblem: 1+1?\\n\\nLet's think step by step.\\n"
    """
    label = INPUT_LABEL.get(task_type, "Input")
    return f"{instruction}\n\n{label}: {text}\n\n{STEP}\n"


def answer_sentence(answer: str) -> str:
    return f"{ANSWER_PREFIX} {answer}"


def with_answer_sentence(rationale: str, answer: str) -> str:
    """Make sure a rationale ends with the answer sentence the student learns to write.

    >>> with_answer_sentence("Two and two make four.", "4")
    'Two and two make four. The answer is: 4'
    >>> with_answer_sentence("... The answer is: 4", "4")
    '... The answer is: 4'
    """
    r = rationale.rstrip()
    tail = r[-200:].lower()
    if ANSWER_PREFIX.lower() in tail or "the answer is" in tail:
        return r
    return f"{r} {answer_sentence(answer)}"


def training_completion(rationale: str, answer: str, *, cot: bool = True) -> str:
    """The completion the loss is computed on: the rationale (CoT) or just the answer sentence."""
    return with_answer_sentence(rationale, answer) if cot else answer_sentence(answer)
