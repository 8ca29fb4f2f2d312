"""Storage failures, each naming the database file and the SQLite cause."""


class StorageError(RuntimeError):
    """A database operation failed; the message names the file and the cause."""


class SchemaError(StorageError):
    """The database was written by a newer version of the service."""
