"""The one user-facing error type: a one-line message that names the file, line or field."""

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` on one line: a newline or another control character (in a file name, say) written as an escape
    (``\\n``, ``\\x1b``), so a name cannot forge extra ``error:`` lines or move the terminal's cursor."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


class HiersegError(Exception):
    """Bad input or environment. The CLI prints ``error: <message>`` and exits with code 2."""


class ProblemList(HiersegError):
    """Several independent problems in one input (a label table, a dataset spec); ``problems`` holds one line each.

    The CLI prints every line as its own ``error: ...``; the message alone names the first one.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{self.problems[0]}{more}")
