"""Built-in search spaces; importing registers them."""

from efsnas.spaces import nb201  # noqa: F401
