"""The Dagster code location: everything is loaded from `pipelines/defs`.

The defs module is named here rather than found through pyproject.toml's `[tool.dg]` section, so
the code location loads the same from a checkout and from an installed wheel
(`dagster dev -m pipelines.definitions`), wherever either lives.
"""

from pathlib import Path

import dagster as dg

import pipelines
import pipelines.defs


@dg.definitions
def defs() -> dg.Definitions:
    return dg.ComponentTree.from_module(
        defs_module=pipelines.defs, project_root=Path(pipelines.__file__).resolve().parent.parent
    ).build_defs()
