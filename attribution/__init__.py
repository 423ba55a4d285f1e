"""attribution: downstream-impact analytics for AI shopping assistants."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("attribution")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
