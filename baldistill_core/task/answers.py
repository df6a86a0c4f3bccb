"""Final-answer extraction and comparison, shared by the teacher filter and by evaluation.

The original BalDistill code found class labels by substring, so "reporting" read as the label
"tin". Here labels match as whole words only, the last answer sentence wins, math answers are
LaTeX-normalised and multiple-choice answers are reduced to their choice letter.

>>> extract_answer('The story reports earnings. The topic is "earn".', "classification", ["earn", "tin"])
'earn'
>>> extract_answer("So x = 3, thus \\\\boxed{\\\\frac{1}{2}}.", "math")
'1/2'
>>> is_correct("\\\\dfrac{1}{2}", "1/2", "math")
True
"""

from __future__ import annotations

from baldistill_core.errors import ConfigError

import re
import string
from collections import Counter
from fractions import Fraction

from baldistill_core.task.prompts import ANSWER_PREFIX

TASK_TYPES = ("classification", "math", "multiple_choice", "qa")

# "The answer is: X", "the answer is X", "Answer: X", "Final answer: X" — the last one wins.
_ANSWER_CUE = re.compile(
    r"(?:the\s+(?:final\s+|correct\s+)?answer\s+is\s*[:\-]?|final\s+answer\s*[:\-]|(?<![a-z])answer\s*:)\s*",
    re.IGNORECASE,
)
# Phrases a classification rationale uses before its chosen label (when it has no answer sentence).
_LABEL_CUE = re.compile(
    r"(?:topic|label|category|class)\b[^.\n]{0,80}?(?:\b(?:is|be|as)\b\s*:?|:)\s*"
    r"|(?:classified|categorized|categorised|assigned|labell?ed)\s+(?:as|to|under)\s*"
    r"|falls?\s+(?:under|into)\s*(?:the\s+)?(?:topic|category|label)?\s*(?:of\s+)?",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[\"“”'‘’`*]{1,2}([^\"“”‘’`*\n]{1,60}?)[\"“”'‘’`*]{1,2}")
_WORD_CH = r"A-Za-z0-9\-_"


def _canon_label(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().strip(string.punctuation + "“”‘’ ").lower())


def _label_pattern(labels: list[str]) -> re.Pattern:
    # Longest first so "nat-gas" wins over "gas"; the lookarounds make matches whole words
    # (a hyphen counts as part of a word, so "gas" never matches inside "nat-gas").
    alts = sorted({lab.strip() for lab in labels if lab.strip()}, key=len, reverse=True)
    body = "|".join(re.escape(a).replace(r"\ ", r"\s+") for a in alts)
    return re.compile(rf"(?<![{_WORD_CH}])(?:{body})(?![{_WORD_CH}]|-\w)", re.IGNORECASE)


_PATTERN_CACHE: dict[tuple[str, ...], tuple[re.Pattern, dict[str, str]]] = {}


def _labels_index(labels: list[str]) -> tuple[re.Pattern, dict[str, str]]:
    key = tuple(labels)
    hit = _PATTERN_CACHE.get(key)
    if hit is None:
        if len(_PATTERN_CACHE) > 64:
            _PATTERN_CACHE.clear()
        hit = (_label_pattern(labels), {_canon_label(lab): lab for lab in labels})
        _PATTERN_CACHE[key] = hit
    return hit


def _last_cue_tail(text: str, cue: re.Pattern) -> str | None:
    last = None
    for m in cue.finditer(text):
        last = m
    return text[last.end():] if last else None


def _label_at_start(segment: str, pattern: re.Pattern, canon: dict[str, str]) -> str | None:
    """A label right at the start of ``segment`` (after quotes, bold marks or "the")."""
    seg = re.sub(r"^[\s\"“”'‘’`*(\[]*(?:the\s+)?(?:topic\s+|label\s+|category\s+)?[\s\"“”'‘’`*(\[]*", "", segment[:120],
                 flags=re.IGNORECASE)
    m = pattern.match(seg)
    if m is None:  # "would be:earnThis is because ..." — sentences glued together in recorded text
        for lab in sorted(canon, key=len, reverse=True):
            if seg[:len(lab)].lower() == lab and seg[len(lab):len(lab) + 1].isupper() and seg[:1].islower():
                return canon[lab]
        return None
    return canon.get(_canon_label(m.group(0)))


def extract_label(text: str, labels: list[str]) -> str | None:
    """The label a classification rationale ends at, matched as a whole word.

    Order: the last answer sentence; the last labelling phrase ("the topic ... is X"); the last
    quoted label; the last label mentioned as a whole word.

    >>> extract_label("Its reporting on acquisitions. The answer is: acq", ["acq", "tin"])
    'acq'
    >>> extract_label("Reporting about tinned food exports", ["tin", "acq"]) is None
    True
    >>> extract_label("The topic is natural gas, i.e. nat-gas.", ["gas", "nat-gas"])
    'nat-gas'
    """
    if not text or not labels:
        return None
    pattern, canon = _labels_index(labels)
    for cue in (_ANSWER_CUE, _LABEL_CUE):
        tail = _last_cue_tail(text, cue)
        if tail is not None:
            hit = _label_at_start(tail, pattern, canon)
            if hit is not None:
                return hit
    quoted = [canon[c] for c in (_canon_label(m.group(1)) for m in _QUOTED.finditer(text)) if c in canon]
    if quoted:
        return quoted[-1]
    found = list(pattern.finditer(text))
    return canon.get(_canon_label(found[-1].group(0))) if found else None


# ---------------------------------------------------------------- math


def _braced(s: str, start: int) -> tuple[str, int] | None:
    """Contents of the {...} group opening at ``s[start]`` and the index after it."""
    if start >= len(s) or s[start] != "{":
        return None
    depth = 0
    for i in range(start, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[start + 1:i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    r"""Contents of the last \boxed{...} (or \fbox{...}) in ``text``.

    >>> last_boxed(r"so \boxed{2} then \boxed{\frac{3}{4}}")
    '\\frac{3}{4}'
    """
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    j = text.find("{", idx)
    if j < 0:
        return None
    got = _braced(text, j)
    return got[0] if got else None


_ATOM = r"\\?[\w.]+|\\sqrt\{[\w.]+\}"


def _bare_token(s: str, j: int) -> tuple[str, int] | None:
    if j >= len(s):
        return None
    m = re.match(r"\\[A-Za-z]+", s[j:])
    if m:
        return m.group(0), j + m.end()
    return s[j], j + 1


def _replace_frac(s: str) -> str:
    out = []
    i = 0
    while i < len(s):
        m = re.match(r"\\[dt]?frac", s[i:])
        if m:
            j = i + m.end()
            while j < len(s) and s[j] == " ":
                j += 1
            a = _braced(s, j) or _bare_token(s, j)  # \frac12, \frac\pi 2
            if a is not None:
                k = a[1]
                while k < len(s) and s[k] == " ":
                    k += 1
                b = _braced(s, k) or _bare_token(s, k)
                if b is not None:
                    num, den = _replace_frac(a[0]), _replace_frac(b[0])
                    num = num if re.fullmatch(_ATOM, num.strip()) else f"({num})"
                    den = den if re.fullmatch(_ATOM, den.strip()) else f"({den})"
                    out.append(f"{num}/{den}")
                    i = b[1]
                    continue
        out.append(s[i])
        i += 1
    return "".join(out)


def normalize_math(ans: str) -> str:
    r"""Canonical text of a math answer: strips $, \boxed, \left/\right, \text units, spaces.

    >>> normalize_math(r"$\boxed{\dfrac{1}{2}}$.")
    '1/2'
    >>> normalize_math(r"\left( 3, \frac{\pi}{2} \right)")
    '(3,\\pi/2)'
    >>> normalize_math(r"10\text{ cm}")
    '10'
    >>> normalize_math("1,000")
    '1000'
    """
    s = (ans or "").strip()
    inner = last_boxed(s)
    if inner is not None:
        s = inner
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\[\(\)\[\]]", "", s)  # \( \) \[ \]
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", "")
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)\b\s*", "", s)
    s = re.sub(r"\^\s*\{?\\circ\}?|°|\\degree", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.strip().rstrip(".").strip()
    # A trailing unit in \text{...} / \mbox{...} goes; a \text that is the whole answer stays.
    s = re.sub(r"(?<=\S)\s*\\(?:text|mbox|textbf|mathrm)\s*\{[^{}]*\}\s*$", "", s)
    s = re.sub(r"\\(?:text|mbox|textbf|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\sqrt\s*(\w)", r"\\sqrt{\1}", s)
    s = _replace_frac(s)
    s = s.replace("\\cdot", "*").replace("\\times", "*")
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".").rstrip(",")
    s = re.sub(r"^[a-zA-Z]\s*=", "", s)  # "x=5" -> "5"
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+\.\d*?0+", s):
        s = s.rstrip("0").rstrip(".")
    s = re.sub(r"^\{(.*)\}$", r"\1", s)
    return s


def _as_number(s: str) -> Fraction | None:
    try:
        if re.fullmatch(r"-?\d+(\.\d+)?", s):
            return Fraction(s)
        m = re.fullmatch(r"(-?)\(?(-?\d+)\)?/\(?(\d+)\)?", s)
        if m and int(m.group(3)) != 0:
            return Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def extract_math(text: str) -> str | None:
    r"""The last "The answer is: X" (up to the end of its line/sentence), else the last \boxed{}."""
    tail = _last_cue_tail(text, _ANSWER_CUE)
    if tail is not None:
        boxed = last_boxed(tail[:400])
        if boxed is not None:
            return normalize_math(boxed) or None
        # End at a newline, or at a period followed by a space/end that is not a decimal point.
        m = re.match(r"(.*?)(?:\n|\.\s|\.$|$)", tail.strip(), re.DOTALL)
        cand = normalize_math(m.group(1) if m else tail)
        if cand:
            return cand
    boxed = last_boxed(text)
    if boxed is not None:
        return normalize_math(boxed) or None
    return None


# ---------------------------------------------------------------- multiple choice and QA

_CHOICE = "ABCDE"


def extract_choice(text: str) -> str | None:
    """The choice letter a rationale ends at: "(B)", "B)", "answer is B", "option B".

    >>> extract_choice("Option A is wrong. The answer is: (C) 42")
    'C'
    >>> extract_choice("I think B) fits best.")
    'B'
    """
    tail = _last_cue_tail(text, _ANSWER_CUE)
    if tail is not None:
        m = re.match(r"[\s\"'*(\[]*(?:option\s+|choice\s+)?\(?([A-Ea-e])(?![A-Za-z])", tail)
        if m:
            return m.group(1).upper()
    pats = [r"\(([A-E])\)", r"(?<![A-Za-z])([A-E])\)", r"(?:option|choice)\s+\(?([A-E])\b"]
    best: tuple[int, str] | None = None
    for p in pats:
        for m in re.finditer(p, text, flags=re.IGNORECASE if "option" in p else 0):
            if best is None or m.start() >= best[0]:
                best = (m.start(), m.group(1).upper())
    if best:
        return best[1]
    m = re.fullmatch(r"\s*\(?([A-Ea-e])[).:]?\s*", text)
    return m.group(1).upper() if m else None


def normalize_qa(s: str) -> str:
    """SQuAD-style: lowercase, drop punctuation and articles, squeeze spaces.

    >>> normalize_qa("The  Eiffel Tower!")
    'eiffel tower'
    """
    s = (s or "").lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def token_f1(pred: str, gold: str) -> float:
    """Word-level F1 between normalised answers.

    >>> round(token_f1("the red car", "a red bus"), 2)
    0.5
    """
    p, g = normalize_qa(pred or "").split(), normalize_qa(gold or "").split()
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def extract_qa(text: str) -> str | None:
    tail = _last_cue_tail(text, _ANSWER_CUE)
    if tail is None:
        return None
    m = re.match(r"(.*?)(?:\n|\.\s|\.$|$)", tail.strip(), re.DOTALL)
    ans = (m.group(1) if m else tail).strip().strip("\"'“”*")
    return ans or None


# ---------------------------------------------------------------- the shared entry points


def extract_answer(text: str, task_type: str, labels: list[str] | None = None) -> str | None:
    """The final answer a rationale (or a student's output) ends at, or None if there is none.

    Never raises on arbitrary text.

    >>> extract_answer("Summing up, the answer is: (B).", "multiple_choice")
    'B'
    >>> extract_answer("It is money-fx news. The answer is: money-fx", "classification", ["money-fx", "fx"])
    'money-fx'
    """
    if not isinstance(text, str) or not text.strip():
        return None
    if task_type == "classification":
        if labels:
            return extract_label(text, labels)
        return extract_qa(text)
    if task_type == "math":
        return extract_math(text)
    if task_type == "multiple_choice":
        return extract_choice(text)
    if task_type == "qa":
        return extract_qa(text)
    raise ConfigError(f"unknown task type {task_type!r}; use one of {', '.join(TASK_TYPES)}")


def normalize_answer(ans: str, task_type: str) -> str:
    """Canonical form used for comparison.

    >>> normalize_answer(" Money-FX ", "classification")
    'money-fx'
    >>> normalize_answer("(c)", "multiple_choice")
    'C'
    """
    ans = "" if ans is None else str(ans)
    if task_type == "math":
        return normalize_math(ans)
    if task_type == "multiple_choice":
        c = extract_choice(ans)
        return c if c else ans.strip().upper()
    if task_type == "qa":
        return normalize_qa(ans)
    return _canon_label(ans)


def is_correct(pred: str | None, gold: str, task_type: str) -> bool:
    """Does a predicted answer match the gold one? Math compares numbers exactly (1/2 == 0.5).

    >>> is_correct("0.5", "\\\\frac{1}{2}", "math"), is_correct(None, "a", "qa")
    (True, False)
    """
    if pred is None or gold is None:
        return False
    p, g = normalize_answer(pred, task_type), normalize_answer(gold, task_type)
    if not p:
        return False
    if p == g:
        return True
    if task_type == "math":
        a, b = _as_number(p), _as_number(g)
        return a is not None and a == b
    return False


def answer_sentence_ok(rationale: str) -> bool:
    """Does the rationale end with the answer sentence the student is taught to write?"""
    return ANSWER_PREFIX.lower() in (rationale or "")[-300:].lower()
