"""The exit codes of the command line: what a script can test."""

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_INVALID = 2  # bad arguments, or Dagster refused the launch (config validation)
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EXIT_CODES = {
    EXIT_OK: "done (with --wait: the run succeeded)",
    EXIT_RUN_FAILED: "the run failed or was canceled, verify found the live tables differ from the set, or this "
    "command failed unexpectedly (INTERNAL_ERROR); the error_type and message are printed",
    EXIT_INVALID: "bad arguments, or Dagster refused the launch (the reasons are printed)",
    EXIT_UNREACHABLE: "the Dagster webserver could not be reached",
    EXIT_TIMEOUT: "--wait ran out of time (the run goes on)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C; a run already launched goes on)",
}
# The error_type of a failure of this command itself (a bug, or an answer from the webserver it cannot read).
INTERNAL_ERROR = "INTERNAL_ERROR"
