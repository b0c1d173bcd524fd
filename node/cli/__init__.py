"""The `blindmatch` command line: one module per subcommand."""

# The console script's entry point stays `blindmatch.node.cli:main`, so an installed script
# keeps working across the move of the CLI into this package.
from blindmatch.node.cli.main import main

__all__ = ["main"]
