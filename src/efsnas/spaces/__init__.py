"""Built-in search spaces; importing registers them."""

from efsnas.spaces import mobilenet, nb201  # noqa: F401
