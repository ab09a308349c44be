"""Parameter types the commands share."""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloat(click.FloatRange):
    """A float within a range that is also finite (click lets nan and inf through a FloatRange)."""

    name = "finite float"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE_NONNEGATIVE = FiniteFloat(min=0.0)
