"""The exceptions of ``minicnn.data``: each one says which file, what is wrong, and what to do."""


class DataError(ValueError):
    """A data file or data set that cannot be used: corrupt, truncated, wrong format or size."""


class ChecksumError(DataError):
    """A downloaded file whose SHA-256 differs from the published one (the file is not kept)."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A data set found in none of the places searched; the message lists them and how to get it."""
