"""``python -m nbserve``: the ``nbserve`` command."""

from nbserve._cli import main

raise SystemExit(main())
