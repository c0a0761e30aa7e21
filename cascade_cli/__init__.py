"""The ``cascade`` command-line tool."""


def version() -> str:
    """The installed distribution's version (looked up only when asked: it costs start-up)."""
    from importlib import metadata

    try:
        return metadata.version("cascade")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "unknown (not installed)"
