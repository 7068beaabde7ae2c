"""The examples' tests run with the engine tests' settings and fixtures (tests/conftest.py)."""

from tests.conftest import _parsers_built_once, serve_dir  # noqa: F401
