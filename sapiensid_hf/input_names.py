"""An error that names an input, said of the input the caller gave: a file decoded once and handed on as an
array (or cut into pieces) keeps the file's name in what goes wrong."""

from __future__ import annotations

from .processing.image_decoding import SapiensIDInputError

# Besides SapiensIDInputError (and its subclasses), the exact error types whose message names the input
# first (the processor's): safe to rebuild renamed.
NAMING_ERRORS = (RuntimeError, ValueError)


def renamed_error(error: BaseException, old_name: str, new_name: str) -> BaseException:
    """`error` with its message's leading `old_name` replaced by `new_name` (same type, same cause); any
    other error as it is."""
    message = str(error)
    names_input = isinstance(error, SapiensIDInputError) or type(error) in NAMING_ERRORS
    if not names_input or not message.startswith(old_name):
        return error
    renamed = type(error)(new_name + message[len(old_name) :])
    renamed.__cause__ = error.__cause__
    return renamed


__all__ = ["renamed_error"]
