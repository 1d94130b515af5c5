"""patterd: the Patter daemon, its control API and ``patterctl``."""

from importlib import metadata

try:
    __version__ = metadata.version("patter")
except metadata.PackageNotFoundError:
    __version__ = "0.1.0"
