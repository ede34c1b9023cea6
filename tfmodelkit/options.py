"""Keyword options checked by name before any work starts.

A misspelt option must never be dropped silently (``convert(src, dst, quantise="int8")`` would
write a float model), and a Python ``TypeError`` is a traceback, not an answer: the public
functions refuse unknown names with a :class:`~tfmodelkit.errors.UserError` that lists what
they take and the likeliest intended name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .errors import UserError

F = TypeVar("F", bound=Callable[..., Any])


def refuse_unknown(what: str, given: Iterable[str], allowed: Iterable[str], listed: Iterable[str] | None = None) -> None:
    """Raise a UserError naming each of ``given`` that is not in ``allowed`` (the message lists
    ``listed``, by default ``allowed``)."""
    allowed = sorted(set(allowed))
    unknown = [name for name in given if name not in allowed]
    if not unknown:
        return
    import difflib  # only for the error: start-up never pays for it

    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, allowed, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    noun = "option" if len(unknown) == 1 else "options"
    takes = sorted(set(allowed if listed is None else listed))
    raise UserError(f"{what}: unknown {noun} {', '.join(hints)}; it takes: {', '.join(takes) or 'none'}")


def keyword_names(fn: Callable[..., Any]) -> frozenset[str]:
    """The names ``fn`` accepts as keywords."""
    import inspect  # a few ms of start-up (ast, tokenize) that modelinspect's readers never need

    return frozenset(
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def option_names(fn: Callable[..., Any]) -> frozenset[str]:
    """The options of ``fn``: keyword parameters with a default."""
    import inspect

    return frozenset(
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty
    )


def checked_options(fn: F | None = None, *, name: str | None = None) -> Any:
    """Wrap ``fn`` so that an unknown keyword argument is a UserError naming it, not a TypeError.

    ``name`` is how messages call the function (its ``__name__`` by default); usable as
    ``@checked_options`` or ``@checked_options(name="verify")``."""

    def wrap(fn: F) -> F:
        names, listed = keyword_names(fn), option_names(fn)
        label = name or fn.__name__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refuse_unknown(label, kwargs, names, listed)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap(fn) if fn is not None else wrap


def given(options: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The options set to something other than None (or than their default)."""
    defaults = defaults or {}
    return {k: v for k, v in options.items() if v is not None and not (k in defaults and defaults[k] == v)}
