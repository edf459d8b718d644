"""User-facing errors: the CLI prints their message on one line and exits with their code."""


class EfsnasError(Exception):
    """An error whose message tells the user what is wrong and how to fix it."""

    exit_code = 1


class UsageError(EfsnasError):
    """Bad input from the user (arguments, config, files): exit code 2."""

    exit_code = 2


class DataError(UsageError):
    """A dataset is missing or not in the expected format."""


class CheckpointError(UsageError):
    """A checkpoint is corrupted or belongs to another run."""


class WorkerError(EfsnasError):
    """A worker process or cluster job died before returning its result (finished results are
    kept; rerunning the command continues)."""


class TrainingError(EfsnasError):
    """Training cannot produce a usable result (no step taken, a non-finite loss)."""
