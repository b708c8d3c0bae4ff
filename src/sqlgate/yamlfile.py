"""Load a YAML file into a pydantic model, naming each mistake by its path and line.

Shared by the settings file and the policy file, so both report errors the same
way: ``databases.demo.port: not a valid integer (line 12)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from sqlgate.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# Short phrasing for pydantic's most common error types; anything else keeps
# pydantic's own message.
_PHRASES = {
    "int_parsing": "not a valid integer",
    "int_type": "not a valid integer",
    "float_parsing": "not a valid number",
    "bool_parsing": "not a valid boolean (use true or false)",
    "bool_type": "not a valid boolean (use true or false)",
    "string_type": "not a string",
    "missing": "required but missing",
    "extra_forbidden": "unknown key",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
}


def read_yaml(path: Path) -> Any:
    """Parse ``path`` keeping line numbers; a syntax error becomes a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML", problems=[str(exc)]) from exc


def describe_errors(exc: ValidationError, document: Any) -> list[str]:
    """One line per validation error: dotted path, phrase, and line when known."""
    return [_describe(error, document) for error in exc.errors()]


def _describe(error: ErrorDetails, document: Any) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "(top level)"
    phrase = _PHRASES.get(error["type"]) or error["msg"].removeprefix("Value error, ")
    line = line_of(document, error["loc"])
    return f"{path}: {phrase}" + (f" (line {line})" if line else "")


def line_of(document: Any, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest node of ``loc`` that exists in the document."""
    node, line = document, None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def load_model(path: Path, model: type[M], **extra: Any) -> M:
    """Read ``path`` and validate it as ``model``; every mistake is listed at once."""
    document = read_yaml(path)
    if document is None:
        document = CommentedMap()
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    try:
        return model(**{str(k): v for k, v in document.items()}, **extra)
    except ValidationError as exc:
        problems = describe_errors(exc, document)
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems=problems) from exc
