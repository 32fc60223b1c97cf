"""Errors users see: one line naming the file and the record."""


class GrcfError(Exception):
    """A user-facing error; the CLI prints it as one line and exits non-zero."""


class DataError(GrcfError):
    def __init__(self, file, message, record=None):
        where = f"{file}" + (f" [{record}]" if record is not None else "")
        super().__init__(f"{where}: {message}")
        self.file = str(file)
        self.record = record
