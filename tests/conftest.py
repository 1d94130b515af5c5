import pytest


@pytest.fixture(autouse=True)
def _private_history(tmp_path_factory, monkeypatch):
    """No test writes call history into the developer's real data folder."""
    monkeypatch.setenv("PATTER_LOG_DIR", str(tmp_path_factory.mktemp("patter-history")))
