"""Imported by the server that forks the multiprocess executor's step processes: it imports and
builds the code location once (every `pipelines.defs` module), so that each step process, forked
from it, builds the definitions from modules already imported (about 0.1 s instead of 0.6 s)."""

from pipelines.definitions import defs

defs()
