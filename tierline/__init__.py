"""The tierline command line (``tierline --help``)."""
