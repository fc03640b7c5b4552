"""The embedded default that `./dev run` starts: SQLite, a file-system broker, local files, e-mail to the console."""

from .base import *  # noqa: F401,F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
