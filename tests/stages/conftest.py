"""The stage tests' helpers now live in tests/helpers.py and their fixtures in
tests/conftest.py; this module re-exports the helpers for the modules not yet moved over."""

from tests.helpers import NoRuntime, context, save_untrained

__all__ = ["NoRuntime", "context", "save_untrained"]
