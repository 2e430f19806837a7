"""The one error type users see: a one-line reason, printed by the CLI with exit code 2."""


class KwsError(Exception):
    """Bad input or an impossible request. The message is one line naming what and why."""


class AudioError(KwsError):
    """A WAV file that cannot be used; the message starts with the file path."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
