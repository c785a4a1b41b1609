"""Adapters that speak to the outside world (S3, the web port, SFTP, the admin API)."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The running build's version, as /health and the admin API report it.
    VERSION = version("cloudstorage")
except PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0.0.0"
