"""Two flow runs on one workspace: the second waits (bounded) for the lock or fails with a clear message."""
import threading
import time

import pytest

from flows.workspace_lock import WorkspaceBusy, workspace_lock


def test_a_second_holder_fails_clearly_after_the_bounded_wait(tmp_path):
    with workspace_lock(tmp_path, "first flow"):
        start = time.monotonic()
        with pytest.raises(WorkspaceBusy) as err:
            with workspace_lock(tmp_path, "second flow", timeout_s=1.0, poll_s=0.1):
                pass
        assert 0.9 < time.monotonic() - start < 5
    message = str(err.value)
    assert "busy" in message and "first flow" in message and "TRANSFERLAB_LOCK_TIMEOUT" in message
    with workspace_lock(tmp_path, "after release", timeout_s=0.5):  # released on exit
        pass


def test_a_second_holder_waits_for_the_first_to_finish(tmp_path):
    order = []
    released = threading.Event()

    def first():
        with workspace_lock(tmp_path, "first flow"):
            order.append("first starts")
            released.wait(5)
            time.sleep(0.5)
            order.append("first ends")

    thread = threading.Thread(target=first)
    thread.start()
    while not order:
        time.sleep(0.05)
    released.set()
    with workspace_lock(tmp_path, "second flow", timeout_s=10, poll_s=0.05):
        order.append("second runs")
    thread.join()
    assert order == ["first starts", "first ends", "second runs"]
