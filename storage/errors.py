"""Storage failures, each naming the database file and the SQLite cause."""


class StorageError(RuntimeError):
    """A database operation failed; the message names the file and the cause."""


class SchemaError(StorageError):
    """The database was written by a newer version of the service."""


class NoRun(StorageError):
    """The database holds no run (of the trader asked for): nothing to report on yet."""


class NoCheckpoint(StorageError):
    """A report needs the session's first checkpoint (a testnet's balance), not yet taken."""
