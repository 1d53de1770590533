from __future__ import annotations

from rag.settings import settings_table

from .conftest import REPO


def test_readme_settings_table_matches_the_code() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- settings:start -->\n") + len("<!-- settings:start -->\n")
    end = readme.index("\n<!-- settings:end -->")
    assert readme[start:end] == settings_table(), "regenerate with: python -m rag.settings"


def test_readme_shows_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick_start and "make test" in quick_start


def test_readme_calibration_table_matches_the_fitted_values() -> None:
    from evals.calibrate import table

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- calibration:start -->\n") + len("<!-- calibration:start -->\n")
    end = readme.index("\n<!-- calibration:end -->")
    assert readme[start:end] == table(), "after `rag eval --calibrate`, paste evals.calibrate.table() here"
