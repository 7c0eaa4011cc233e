"""The one templating rule for SQL text (pipelines.core.sql.render)."""

from __future__ import annotations

import pytest

from pipelines.core import sql


def test_render_fills_every_placeholder_and_only_those(monkeypatch):
    text = "-- t: the {name} of a column (prose)\nSELECT {terms}, '{x}' -- {comment}\nFROM t\n"
    monkeypatch.setattr(sql, "load_sql", lambda name: text)
    assert sql.render("t", terms="a, b", x="y") == (
        "-- t: the {name} of a column (prose)\nSELECT a, b, 'y' -- {comment}\nFROM t\n"
    )
    with pytest.raises(ValueError, match=r"placeholders \['terms', 'x'\], given \['terms'\]"):
        sql.render("t", terms="a")
    with pytest.raises(ValueError, match="given"):
        sql.render("t", terms="a", x="y", extra="z")


@pytest.mark.parametrize(
    ("name", "fills"),
    [
        ("priced_signal", {"hot_columns": ""}),
        ("signal_rollup", {"hot_key_columns": ""}),
        ("breakdown", {"key_terms": "currency"}),
        ("breakdown_rollup", {"key_terms": "currency"}),
    ],
)
def test_the_templates_name_their_placeholders(name, fills):
    assert "{" not in "".join(
        line.split("--")[0] for line in sql.render(name, **fills).splitlines()
    )
