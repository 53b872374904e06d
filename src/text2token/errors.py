"""User-facing errors: one clear line, no traceback (the CLI prints them as ``error: ...``)."""


class Text2TokenError(Exception):
    """A problem with the user's input, config, model or files, stated in one line."""
