import sys

from blindmatch.node.cli.main import main

sys.exit(main())
