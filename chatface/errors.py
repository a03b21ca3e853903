"""Errors a user can cause. Each carries a message a person can act on.

The CLI and the bots turn a ``ChatFaceError`` into a reply, never a traceback.
"""


class ChatFaceError(Exception):
    """Base class for every error a user can cause or fix."""


class ConfigError(ChatFaceError):
    """A setting in config.toml or a CHATFACE_* variable is invalid."""


class KeyStoreError(ChatFaceError):
    """A secret is missing, or the key file is unsafe or unreadable."""


class PluginError(ChatFaceError):
    """A plugin registered something invalid, or a requested plugin object is missing."""


class PlanError(ChatFaceError):
    """An edit plan does not follow the plan contract."""


class StorageError(ChatFaceError):
    """The database cannot be opened, migrated, or holds no such record."""


class WeightsMissingError(ChatFaceError):
    """Model weights needed for an operation are not installed.

    ``weights`` names them when known, so a front end can offer to download them.
    """

    def __init__(self, message: str, weights: str | None = None) -> None:
        super().__init__(message)
        self.weights = weights


class ImageError(ChatFaceError):
    """A photo cannot be used; the subclasses say why."""


class NotAnImageError(ImageError):
    """The file is not an image at all."""


class CorruptImageError(ImageError):
    """The file looks like an image but is truncated or damaged."""


class ImageTooLargeError(ImageError):
    """The image exceeds the byte or pixel limits (this includes decompression bombs)."""


class NoFaceError(ImageError):
    """No face was found in the photo."""


class FaceTooSmallError(ImageError):
    """The face is too small to edit well."""
