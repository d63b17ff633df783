"""The README's generated tables match the code."""

from entrypoint import docs


def test_readme_tables_are_current():
    current = docs.README.read_text()
    assert docs.render(current) == current, "README.md is stale: run `python -m entrypoint.docs`"


def test_every_setting_is_in_the_readme():
    current = docs.README.read_text()
    for setting in docs.SETTINGS:
        assert f"| `{setting.name}` |" in current
