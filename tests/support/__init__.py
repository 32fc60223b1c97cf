"""Builders the tests share: pipeline copies, tool runs, small stores and source releases, a synthetic clip.

Test modules import from here (``from support.project import copy_project``), never from each
other or from ``conftest`` (which holds fixtures and hooks only).  pytest puts ``tests/`` on
``sys.path`` (rootdir conftest, prepend import mode), so ``support`` is importable from any test
module and from the conftest.
"""
