"""Errors every layer raises for bad user input; the message names the file, folder, key or row."""
from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used; the message names the file, folder or row."""
