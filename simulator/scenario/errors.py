"""The one error type for invalid input: a list of problems, each naming its key path."""


class ConfigError(Exception):
    """Invalid scenario input. `problems` are lines like 'parallelism.tp: must divide model.heads (96)'."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


MAX_SHOWN = 80  # characters of a user's value or key echoed in a message


def printable(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` safe to print in a message: control and other non-printable characters escaped (a name
    or key with terminal escape codes must not drive the user's terminal), cut after `limit`."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
