"""The one error type users see: a single sentence naming the problem, the place and the fix."""


class LoraflowError(Exception):
    """A problem with the user's input or config; the CLI prints it as one line and exits non-zero."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
