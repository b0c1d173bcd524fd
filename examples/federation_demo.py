"""Run the main demo (the same as `blindmatch demo`): a hub and two platforms on this machine.

python examples/federation_demo.py
"""

import sys

from blindmatch.node.devtools.demo_federation import main

sys.exit(main())
