"""The documentation site stays complete: every setting carries a description, the generated
configuration reference (docs/hooks/config_reference.py, run by ``mkdocs build``) names every setting with
its environment variable, and every page is in the site's navigation. ``mkdocs build --strict`` itself
(broken links and anchors) runs in .ci/run, with the ``docs`` extra."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from gateway.config import ApiKey, ModelConfig, RayDeployment, Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_CLASSES = [Settings, ModelConfig, ApiKey, RayDeployment]


def _hook():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs/hooks/config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda cls: cls.__name__)
def test_every_setting_has_a_description(cls):
    missing = [name for name, field in cls.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"give these fields of {cls.__name__} a Field(description=...): {missing}"


def test_the_reference_lists_every_setting_with_its_env_var_default_and_description():
    reference = _hook().render_reference()
    server_table = reference.split("### Model tables")[0]
    rows = {line.split(" | ")[0].strip("| `"): line for line in server_table.splitlines()
            if line.startswith("| `")}
    for name, field in Settings.model_fields.items():
        row = rows[name]
        assert f"`GATEWAY_{name.upper()}`" in row
        assert field.description in row
    assert "| `max_body_bytes` | `GATEWAY_MAX_BODY_BYTES` | integer, > 0 | `8388608` (8 MiB) |" in reference
    assert '| `engine` | `GATEWAY_ENGINE` | `"auto"`, `"torch"` or `"mlx"` | `"auto"` |' in reference
    for cls in (ModelConfig, ApiKey, RayDeployment):
        for name in cls.model_fields:
            assert f"| `{name}` |" in reference, f"{cls.__name__}.{name} missing from the reference"
    assert "| `name` | string | required |" in reference


def test_the_reference_refuses_a_field_without_description():
    from pydantic import BaseModel

    class Undocumented(BaseModel):
        knob: int = 3

    with pytest.raises(ValueError, match="Undocumented.knob"):
        _hook()._table(Undocumented)


def test_the_configuration_page_holds_the_reference_marker():
    assert _hook().MARKER in (ROOT / "docs/configuration.md").read_text()


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$", nav, flags=re.MULTILINE))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == listed


def test_the_readme_is_a_front_page_whose_links_resolve():
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= 250
    for marker in ("<!-- serve-command -->", "<!-- test-command -->"):  # .ci/run reads the line 2 below
        at = lines.index(marker)
        assert lines[at + 1] == "```bash" and lines[at + 2].startswith("python3 -m venv .venv && ")
    targets = re.findall(r"\]\(((?!https?:|#)[^)#]+)(?:#[^)]*)?\)", readme)
    assert any(t.startswith("docs/") for t in targets)
    broken = [t for t in targets if not (ROOT / t).exists()]
    assert not broken, f"README links to missing files: {broken}"
