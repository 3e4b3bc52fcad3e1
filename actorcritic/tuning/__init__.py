"""The pieces of `actorcritic tune` (the entry point is actorcritic/tune.py): search spaces,
the tune directory, trial processes and the reports written after every trial."""
