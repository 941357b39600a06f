"""The two errors a back-end raises; the protocol loop (rdt_sidecar.py) turns them into error replies."""


class SetupError(Exception):
    """A missing package or render back-end: one message saying what and how to fix it."""

    def __init__(self, message, fix):
        super().__init__(message)
        self.fix = fix


class RequestError(Exception):
    """A request the environment cannot serve (bad field, task out of range, step before reset)."""
