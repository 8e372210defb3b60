"""Moved to `schemas.resources` (the resource-URI grammar is a wire contract); this re-export goes."""
from schemas.resources import *  # noqa: F401,F403
