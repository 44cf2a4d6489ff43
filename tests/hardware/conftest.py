"""Fixtures for the controller board: one regeneration of every output shared by the whole module."""

import pytest

from jincun import hwtools


@pytest.fixture(scope="session")
def hw_result(tmp_path_factory):
    """check() run once into a private output folder, against the real firmware pin map."""
    out = tmp_path_factory.mktemp("hw_out")
    return hwtools.check(out_dir=out)


@pytest.fixture()
def fresh_board():
    """A newly built board circuit with its modules, for tests that alter it."""
    return hwtools.build_board()
