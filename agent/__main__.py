"""python -m agent: the wichtel command."""

import sys

from agent.cli import main

sys.exit(main())
