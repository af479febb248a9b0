"""The ``splitctl`` command line: one Typer sub-app (or command) per noun, mounted in :mod:`.app`."""
