"""Atomic outputs: what a stage writes appears whole, with the usual file mode."""


def test_outputs_get_the_usual_mode_not_a_private_one(tmp_path):
    import os

    from transferlab.system.io import atomic_dir

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "prepared") as scratch:
            (scratch / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "prepared").stat().st_mode & 0o777 == 0o755
