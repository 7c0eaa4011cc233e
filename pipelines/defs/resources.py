"""The one place resources are bound."""

import dagster as dg

from pipelines.defs.partitions import TallyHome


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"tally": TallyHome(home=dg.EnvVar("TALLY_HOME"))})
