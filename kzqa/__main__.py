"""``python -m kzqa …`` is the ``kzqa`` command."""

from .app.cli import main

main()
