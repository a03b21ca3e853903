"""chatface: edit real face photos by chatting.

The public surface for plugin authors is small: ``hookimpl`` to mark hook
implementations, and the types in :mod:`chatface.engine.types`.
"""

from chatface.engine.hookspecs import hookimpl
from chatface.errors import ChatFaceError

__version__ = "0.1.0"
__all__ = ["ChatFaceError", "__version__", "hookimpl"]
