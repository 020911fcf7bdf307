"""Fixtures shared by the world's tests."""
from contextlib import contextmanager

import pytest


@pytest.fixture
def stopped_at(monkeypatch):
    """`with stopped_at(n): run()`: the run saves its training state as usual (world/resume.py) and stops right after
    the save at step n, as a session's end stops it (KeyboardInterrupt); the block fails if the run never stops."""
    from vlmlab.world import resume

    save = resume.TrainState.save

    @contextmanager
    def stop(n: int):
        def save_then_stop(self, step, steps, extra=None):
            save(self, step, steps, extra)
            if step == n:
                raise KeyboardInterrupt

        monkeypatch.setattr(resume.TrainState, "save", save_then_stop)
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            monkeypatch.setattr(resume.TrainState, "save", save)

    return stop
