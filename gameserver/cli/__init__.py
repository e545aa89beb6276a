"""The ``petbox`` command line (``main``) and its command groups."""
