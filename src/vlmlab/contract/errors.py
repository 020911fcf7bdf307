"""Errors a user causes through config or files: the CLI prints their one-line message and exits non-zero.

Every exception of this kind says which key, file or reference is the culprit and what is allowed; the
entry points (train, ablate, report) catch `UserError`, print `error: <message>` and exit 1 without a
traceback and without writing summary.json. Anything else is a bug in vlmlab and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's config, files or references, with a one-line message naming the culprit."""


class ConfigError(UserError, ValueError):
    """A configuration mistake, with a one-line message naming the key and what is allowed."""


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type name if it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
