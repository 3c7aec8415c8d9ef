"""``ledgerctl`` command groups, one module each; each has ``register(commands)``."""
