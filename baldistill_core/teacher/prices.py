"""The teacher price table: USD per million tokens per model, with the date and source it was copied from.

The bundled table is ``assets/prices.yaml``; a workspace gets an editable copy (``<workspace>/prices.yaml``)
on first use, and every run stores the table it was estimated with in its folder. A model that is
not in the table has an unknown price: :func:`price_for` returns ``None`` and never guesses.
Explicit ``teacher.price_in_per_mtok`` / ``price_out_per_mtok`` in a config override the table.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from baldistill_core.errors import ConfigError

BUNDLED = Path(__file__).resolve().parents[2] / "assets" / "prices.yaml"
FREE_BACKENDS = ("recorded", "local")


@dataclass(frozen=True)
class Price:
    in_per_mtok: float | None
    out_per_mtok: float | None
    source: str          # where the figure came from (shown next to every cost)

    @property
    def known(self) -> bool:
        return self.in_per_mtok is not None and self.out_per_mtok is not None

    def cost(self, tokens_in: float, tokens_out: float) -> float | None:
        if not self.known:
            return None
        return round(tokens_in * self.in_per_mtok / 1e6 + tokens_out * self.out_per_mtok / 1e6, 10)


def workspace_table(root: str | Path | None) -> Path:
    """The workspace's editable table (copied from the bundled one on first use); bundled if no root."""
    if root is None:
        return BUNDLED
    p = Path(root) / "prices.yaml"
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BUNDLED, p)
    return p


def load_table(path: str | Path) -> dict:
    """``{date, source, models: {name: {in, out}}}``; a malformed file is a ConfigError naming the fix."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        models = {str(k).lower(): {"in": float(v["in"]), "out": float(v["out"])}
                  for k, v in (raw.get("models") or {}).items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"price table {path} is not readable ({type(e).__name__}: {e}); fix it to the form "
                          f"`models: {{name: {{in: USD/Mtok, out: USD/Mtok}}}}` or delete it to get the bundled one")
    return {"date": str(raw.get("date") or "undated"), "source": str(raw.get("source") or "no source given"),
            "models": models, "path": str(path)}


def price_for(teacher_cfg, table: dict) -> Price:
    """The price of the config's teacher: free backends, explicit config prices, the table, else unknown."""
    if teacher_cfg.backend in FREE_BACKENDS:
        return Price(0.0, 0.0, f"{teacher_cfg.backend} teacher: no paid calls")
    explicit = {"price_in_per_mtok", "price_out_per_mtok"} & teacher_cfg.model_fields_set
    if explicit == {"price_in_per_mtok", "price_out_per_mtok"}:
        if teacher_cfg.price_in_per_mtok is None or teacher_cfg.price_out_per_mtok is None:
            return Price(None, None, f"unknown: the run config gives no price for model {teacher_cfg.model!r}")
        return Price(teacher_cfg.price_in_per_mtok, teacher_cfg.price_out_per_mtok, "the run config's prices")
    row = table["models"].get(teacher_cfg.model.lower())
    if row is None:
        return Price(None, None, f"unknown: model {teacher_cfg.model!r} is not in the price table "
                                 f"{table['path']} (add it there, or set teacher.price_in_per_mtok and "
                                 f"price_out_per_mtok in the config)")
    return Price(row["in"], row["out"], f"price table of {table['date']} ({table['source']})")


def with_prices(cfg, price: Price):
    """A copy of the run config whose teacher prices are the resolved ones, so the ledger agrees with
    the estimate: an unknown price becomes ``None`` (the ledger counts those calls as unpriced) rather
    than staying at the config's default rates, which would be a guess."""
    if cfg.teacher.backend in FREE_BACKENDS:
        return cfg
    update = {"price_in_per_mtok": price.in_per_mtok, "price_out_per_mtok": price.out_per_mtok}
    teacher = cfg.teacher.model_copy(update=update)
    teacher.model_fields_set.update(update)  # explicit from now on: a resumed run keeps the same figures
    return cfg.model_copy(update={"teacher": teacher})
