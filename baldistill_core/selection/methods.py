"""The methods of the paper's comparison, as one typed registry (docs/method.md, "Baselines").

Each method says which balancing policy allocates its stages, whether it trains on rationales,
selects head examples by IFD and fills tail gaps with teacher synthesis. Adding a method is one
``register(Method(...))`` here; its label is the one every page and message shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from baldistill_core.selection import policy as policy_mod

METHODS: dict[str, "Method"] = {}


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    policy: str | None        # balancing policy name; None = no training data at all (zero-shot)
    cot: bool                 # trains on teacher rationales (else on answer sentences only)
    ifd: bool                 # head domains pick by the previous student's IFD from stage 1 on
    synth: bool               # tail gaps filled by teacher-synthesized examples
    train: bool = True
    single_stage: bool = False  # spends the whole budget in one stage (K is ignored)
    help: str = ""

    @property
    def fill(self) -> str | None:
        """How a tail gap is filled: synthesize | duplicate | redistribute (None: no selection)."""
        if not self.policy:
            return None
        fill = policy_mod.POLICIES[self.policy].fill
        return "redistribute" if fill == "synthesize" and not self.synth else fill

    def stages(self, k: int) -> int:
        """K for this method: one-stage baselines spend the budget at once; zero-shot has no stage."""
        if not self.train:
            return 0
        return 1 if self.single_stage else k

    def ignores_stages(self) -> bool:
        return self.single_stage or not self.train


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def get(name: str) -> Method:
    from baldistill_core.errors import ConfigError

    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def label(name: str) -> str:
    """The display label of a method name (the name itself when unknown).

    >>> label("baldistill_a")
    'BalDistill-A'
    """
    return METHODS[name].label if name in METHODS else name


register(Method("zero_shot_cot", "Zero-shot CoT", None, cot=True, ifd=False, synth=False, train=False,
                help="Evaluates the base student with the step-by-step prompt; no teacher call, no training."))
register(Method("random_ft", "Random FT", "random", cot=False, ifd=False, synth=False, single_stage=True,
                help="One stage, natural distribution, trains on gold answers only (no rationale)."))
register(Method("random_ft_cot", "Random FT CoT", "random", cot=True, ifd=False, synth=False, single_stage=True,
                help="One stage, natural distribution, trains on teacher rationales."))
register(Method("duplicate_ft_cot", "Duplicate FT CoT", "duplicate", cot=True, ifd=False, synth=False,
                single_stage=True, help="One stage, equal quotas; tail gaps filled by repeating real examples."))
register(Method("balance_ft_cot", "Balance FT CoT", "naive", cot=True, ifd=False, synth=True, single_stage=True,
                help="One stage, equal quotas; tail gaps filled by teacher synthesis, random within a domain."))
register(Method("active_ft_cot", "Active FT CoT", "random", cot=True, ifd=True, synth=False,
                help="K stages, natural distribution, head picks by the student's IFD; no balancing."))
register(Method("baldistill_n", "BalDistill-N", "naive", cot=True, ifd=True, synth=True,
                help="K stages, equal quotas every stage, IFD head picks, synthetic tail fill."))
register(Method("baldistill_a", "BalDistill-A", "adaptive", cot=True, ifd=True, synth=True,
                help="K stages moving from the natural distribution to equal quotas, IFD head picks, "
                     "synthetic tail fill (the paper's main method)."))


def method_of(cfg) -> Method:
    """The method a run config names."""
    return get(cfg.method)


def effective_stages(cfg) -> int:
    """K for a run config's method (see :meth:`Method.stages`)."""
    return get(cfg.method).stages(cfg.stages)


def _synthesizing_methods() -> str:
    """The methods that fill tail gaps by synthesis, by label with their config name, for messages."""
    return ", ".join(f"{m.label} = method {m.name}" for m in METHODS.values() if m.synth)


policy_mod.synthesizing_methods = _synthesizing_methods
