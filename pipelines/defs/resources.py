"""The one place resources are bound: the Tally home (`TALLY_HOME`, default ./data)."""

import dagster as dg

from pipelines.core.home import Home, resolve_home
from pipelines.pricing.config import Config, load_config


class TallyHome(dg.ConfigurableResource):
    """The data directory (`TALLY_HOME`, default ./data) and its configuration."""

    home: str = ""  # empty: `TALLY_HOME` when the run reads it, else ./data

    def resolve(self) -> Home:
        return resolve_home(self.home or None)

    def config(self) -> Config:
        return load_config(self.resolve().config_dir)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"tally": TallyHome()})
