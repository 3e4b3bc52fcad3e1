"""Errors a user can cause. The CLI prints each as one line and exits with code 2."""


class UserError(Exception):
    """Base class: bad input from the user (config, files, env ids). Never a bug."""

    exit_code = 2


class ConfigError(UserError):
    """A preset, key or value that does not validate."""


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupt, unsafe or from another model."""


class EnvError(UserError):
    """An environment that cannot be made or does not follow the Gymnasium API."""


class RunDirError(UserError):
    """A run directory that exists already, is missing, or cannot be written."""


class RunFailure(RuntimeError):
    """Training could not go on (not the user's input): the CLI prints one line, the run
    dir keeps its last good checkpoint and a summary with status "failed"."""

    exit_code = 4
    stop_reason = "failure"


class NonFiniteError(RunFailure):
    """A NaN or infinity appeared in training; the message says where."""

    exit_code = 3
    stop_reason = "non-finite"


class WorkerFailure(RunFailure):
    """Worker processes kept dying or hanging after the allowed restarts."""

    exit_code = 4
    stop_reason = "worker-failure"
