import sys

from blindmatch.node.cli import main

sys.exit(main())
