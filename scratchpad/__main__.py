import sys

from scratchpad.cli import main

sys.exit(main())
