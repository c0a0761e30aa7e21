"""The ``cascade`` command-line tool."""
