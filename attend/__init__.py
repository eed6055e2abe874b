"""attend: sequence-to-sequence learning you can read, run on your own machine, and watch attend."""

__version__ = "0.1.0"
