"""The ``cascade`` command-line tool."""


def version() -> str:
    """The installed distribution's version (looked up only when asked: it costs start-up)."""
    from importlib import metadata

    for distribution in ("cascade-einsum", "cascade"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown (not installed)"  # a source tree that is not installed
