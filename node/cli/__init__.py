"""The `blindmatch` command line: one module per subcommand."""
