"""What every benchmark raises when a run cannot be made or a figure cannot be trusted."""


class BenchError(RuntimeError):
    pass
