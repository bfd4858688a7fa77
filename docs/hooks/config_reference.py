"""mkdocs hook: renders the configuration reference from the settings classes at build time.

The page ``configuration.md`` holds the marker ``<!-- config-reference -->``; on build it is replaced by
one Markdown table per settings class (``gateway.config.Settings``, ``ModelConfig``, ``ApiKey``,
``RayDeployment``): each field's key, environment variable, type, default and ``Field(description=...)``.
Nothing is parsed by hand: names, types, defaults and constraints are read from pydantic's
``model_fields``, so the page cannot drift from the code. See https://www.mkdocs.org/user-guide/configuration/#hooks
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

MARKER = "<!-- config-reference -->"


def on_config(config):
    """Make the repository's ``gateway`` package importable when building from a bare checkout."""
    root = str(Path(config["config_file_path"]).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the marker, where a page has it, with the rendered reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_reference())


def render_reference() -> str:
    """The reference as Markdown: a table of server settings, then the TOML tables' keys.

    Raises:
        ValueError: a field has no description (the reference would have an empty cell).
    """
    from gateway.config import ApiKey, ModelConfig, RayDeployment, Settings

    prefix = Settings.model_config.get("env_prefix", "")
    sections = [
        "### Server settings\n\n"
        "Top-level keys of the TOML file, or `" + prefix + "<KEY>` environment variables (lists are "
        "comma-separated; tables such as `models` and `ray_ingress` are JSON in the environment).\n\n"
        + _table(Settings, env_prefix=prefix),
        "### Model tables: `[[models]]`\n\n" + _table(ModelConfig),
        "### API key tables: `[[api_keys]]`\n\n" + _table(ApiKey),
        "### Ray Serve tables: `[models.ray]` and `[ray_ingress]`\n\n"
        "Read only by `gateway serve --ray` and `gateway ray-config` "
        "(see [Scaling out with Ray Serve](ray.md)).\n\n"
        + _table(RayDeployment),
    ]
    return "\n\n".join(sections) + "\n"


def _table(model: type, env_prefix: str | None = None) -> str:
    head = ["key", *(["environment variable"] if env_prefix is not None else []), "type", "default",
            "description"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, field in model.model_fields.items():
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} has no Field(description=...)")
        cells = [f"`{name}`"]
        if env_prefix is not None:
            cells.append(f"`{env_prefix}{name.upper()}`")
        cells += [_type_name(field.annotation) + _constraints(field.metadata), _default(field),
                  field.description]
        rows.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(rows)


def _type_name(annotation: object) -> str:
    """``int or none``, ``"auto", "torch" or "mlx"``, ``list of string``, ``table``..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "none"
    if origin is typing.Literal:
        values = [f'`"{v}"`' if isinstance(v, str) else f"`{v}`" for v in args]
        return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    if origin is list:
        return "list of " + _type_name(args[0])
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    if annotation in names:
        return names[annotation]
    if getattr(annotation, "__name__", "") == "SecretStr":
        return "secret string"
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return "table"
    return str(annotation)


def _constraints(metadata: list) -> str:
    """Bounds pydantic checks, e.g. ``, > 0`` or ``, 0 to 65535``."""
    bounds = {}
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(item, attr, None) is not None:
                bounds[sign] = getattr(item, attr)
    return "".join(f", {sign} {value}" for sign, value in bounds.items())


def _default(field) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
        if value == []:
            return "(empty)"
        return "(see its table)" if isinstance(value, BaseModel) else f"`{value}`"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "(unset)"
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    mib = 1024 * 1024
    if isinstance(value, int) and value >= mib and value % mib == 0:  # byte sizes
        return f"`{value}` ({value // mib} MiB)"
    return f"`{value}`"
