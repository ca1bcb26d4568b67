"""sequence losses (see the jaxloss contract in jaxloss._core)."""

__all__: list = []
