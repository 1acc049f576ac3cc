"""What a ``.keras`` file may hold to cross the boundary: built-in Keras objects only.

Read from the archive's config.json before Keras deserializes anything, so a
Lambda layer or a custom class is refused without being imported or executed.
Both sides use it: the grader on a student's file, the pretrained loader on the
course's base.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StudentCodeError

_ALLOWED_MODULE_PREFIXES = ("keras",)


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def inspect_archive(path: Path) -> dict:
    """config.json of a ``.keras`` archive, after :func:`refuse_unsafe`; StudentCodeError for a bad file."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise StudentCodeError(f"The saved model is not a valid .keras file ({type(exc).__name__}: {exc}).") from None
    refuse_unsafe(config)
    return config


def refuse_unsafe(config: dict) -> None:
    """Raise StudentCodeError for any object in a Keras config that is not a built-in Keras object."""
    for node in _walk(config):
        name = node.get("class_name")
        if name is None or "module" not in node:
            continue
        if name in ("Lambda", "TFSMLayer"):
            raise StudentCodeError(
                f"The model contains a {name} layer; it runs arbitrary code, so the grader refuses it "
                "(safe_mode). Use built-in Keras layers instead (e.g. Rescaling, Reshape, Activation)."
            )
        module = node.get("module") or ""
        registered = node.get("registered_name")
        custom = registered is not None and registered != name  # built-in Keras objects carry none
        if custom or (module and not module.startswith(_ALLOWED_MODULE_PREFIXES) and module != "builtins"):
            raise StudentCodeError(
                f"The model uses {name!r} from {(registered if custom else module)!r}, "
                "which is not a built-in Keras object; "
                "the grader only loads built-in Keras layers, losses and optimizers (safe_mode). "
                "Rewrite it with layers from keras.layers."
            )
