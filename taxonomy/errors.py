"""The one user-facing error type: a one-line message that names the file, line or field."""


class HiersegError(Exception):
    """Bad input or environment. The CLI prints ``error: <message>`` and exits with code 2."""
