"""The version of tfmodelkit (one place; the package and the commands report it)."""

__version__ = "0.1.0"
