"""The fast tier (``make test-fast``): unit tests that run in seconds, with stand-ins for the models.

A package on purpose: without this file pytest would import ``tests/fast/conftest.py`` as the module ``conftest``
in place of ``tests/conftest.py``, and every test that does ``from conftest import ...`` would fail to import.
"""
