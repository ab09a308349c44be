"""What the commands of the CLI share: turning ZooErrors into exit codes, parameter types, ``--config`` and
``--set`` overrides, number formatting."""

from __future__ import annotations

import math
import re
from typing import Any

import click

from zoo import api
from zoo.errors import ZooError, ZooUsageError


# parameter types the commands share
class FiniteFloat(click.FloatRange):
    """A float within a range that is also finite (click lets nan and inf through a FloatRange)."""

    name = "finite float"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE_NONNEGATIVE = FiniteFloat(min=0.0)


# library errors name the parameters of zoo.train / zoo.export ...; on the command line they are flags
_PARAM_FLAGS = re.compile(r"(?<![\w.])(resume|nproc|out|dtype|device)=(?=\S)")


_PARAM_FLAG_BARE = re.compile(r"(?<![\w.])(out)=(?!\S)")


def as_flags(message: str) -> str:
    """A library message in flags: ``resume=RUN`` -> ``--resume RUN``, ``force=True`` -> ``--force``."""
    message = message.replace("force=True", "--force")
    message = _PARAM_FLAGS.sub(lambda m: f"--{m.group(1)} ", message)
    return _PARAM_FLAG_BARE.sub(lambda m: f"--{m.group(1)}", message)


class ZooGroup(click.Group):
    """Turns :class:`ZooError` into one-line errors: exit 2 for usage, 1 otherwise."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooUsageError as exc:  # a bad value, not a misuse of the command: no usage banner
            err = click.ClickException(as_flags(_with_filter_note(exc)))
            err.exit_code = exc.exit_code
            raise err from None
        except ZooError as exc:
            err = click.ClickException(as_flags(str(exc)))
            err.exit_code = exc.exit_code
            raise err from None
        except KeyboardInterrupt:
            click.echo("interrupted; files already written are intact (resume with 'zoo train --resume RUN')",
                       err=True)
            ctx.exit(130)


def _with_filter_note(exc: ZooUsageError) -> str:
    """An unknown name while ZOO_PLUGINS hides plugins: the filter is the likely cause, so name it."""
    from zoo.errors import UnknownNameError

    note = api.plugin_state().filter_note if isinstance(exc, UnknownNameError) else ""
    return f"{exc} ({note})" if note else str(exc)


def fmt_value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def overrides_from(sets: tuple[str, ...], config_file: str | None, **train: Any) -> dict[str, Any]:
    """``--config FILE``, then ``--set KEY=VALUE`` (see :func:`zoo.config.read_overrides`), then the ``train.*``
    settings that have flags of their own (``--device``, ``--no-cache``; None: not given)."""
    from zoo.config import merge, read_overrides

    given = {k: v for k, v in train.items() if v is not None}
    return merge(read_overrides(sets, config_file), {"train": given} if given else {})
