"""Expected refusals: what a use case says when it will not do what was asked.

``Refused`` carries a code and parameters and no words: the bot and the command line
word it from their catalogues. ``AlreadyExists`` is how a repository reports a unique
key taken."""

from __future__ import annotations


class AlreadyExists(Exception):
    """A unique key is taken (e.g. a chat already bound to a cohort); nothing was written."""


class Refused(Exception):
    """An expected refusal. ``code`` names it (the bot's catalogue has the words);
    ``params`` fill in the details. Nothing was changed."""

    def __init__(self, code: str, /, **params: object) -> None:
        super().__init__(code, params)
        self.code = code
        self.params = params
