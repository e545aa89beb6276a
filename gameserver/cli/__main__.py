"""``python -m gameserver.cli``: the same as the ``petbox`` command."""

import sys

from gameserver.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
