"""Error types the CLI maps to exit codes: InputError -> 2 (usage or input), anything else -> 1."""


class InputError(ValueError):
    """Bad user input: a config key or value, a data file, a field in it. The message names which."""


class RunFailed(RuntimeError):
    """A run failed for a reason its message states (e.g. training diverged): exit 1, the message, no traceback."""
