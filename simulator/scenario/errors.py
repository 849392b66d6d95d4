"""The one error type for invalid input: a list of problems, each naming its key path."""


class ConfigError(Exception):
    """Invalid scenario input. `problems` are lines like 'parallelism.tp: must divide model.heads (96)'."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems
