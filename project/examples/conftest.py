"""The examples' tests run with the engine tests' settings and fixtures (tests/conftest.py)."""

from tests.conftest import _nothing_left_in_the_repository, _parsers_built_once, serve_dir  # noqa: F401
