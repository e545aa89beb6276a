"""``python -m loadtests``: the ``petbox loadtest`` commands without the server."""

from loadtests.cli import loadtest

if __name__ == "__main__":  # pragma: no cover
    loadtest(prog_name="python -m loadtests")
