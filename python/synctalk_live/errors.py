"""One-line user errors: `"<file or key>: <problem>"`, printed without a traceback by the CLIs (exit code 2)."""


class InputError(Exception):
    """Bad input named by `subject` (a file, a key, a flag); `problem` says what is wrong."""

    def __init__(self, subject, problem):
        super().__init__(f"{subject}: {problem}")
        self.subject = str(subject)
        self.problem = problem
