"""The one user-facing error type: a one-line message that names the file, line or field."""


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
