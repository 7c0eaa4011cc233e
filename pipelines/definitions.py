"""The Dagster code location: everything is loaded from `pipelines/defs`.

The defs module is named here rather than found through pyproject.toml's `[tool.dg]` section, so
the code location loads the same from a checkout and from an installed wheel
(`dagster dev -m pipelines.definitions`), wherever either lives.
"""

import warnings
from pathlib import Path

import dagster as dg

import pipelines
import pipelines.defs

# Tally relies on a few of Dagster's beta/preview APIs on purpose (observable sources, backfill
# policies, partitioned checks, the defs folder); their warnings say nothing to an operator.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.ComponentTree.from_module(
        defs_module=pipelines.defs, project_root=Path(pipelines.__file__).resolve().parent.parent
    ).build_defs()
