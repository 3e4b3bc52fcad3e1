"""mkdocs hooks (mkdocs.yml): the generated pages of the site, made at build time.

- reference/config.md: every config key with its default and help (a key without help
  stops the build with one line);
- reference/presets.md: every preset;
- zoo/NAME/curve.png: the shipped agents' curves, so that pages can show them;
- `<!-- gen:NAME ARGS -->` markers in the pages (scripts/docs_pages.py:expand).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docs_pages  # noqa: E402

GENERATED = {"reference/config.md": docs_pages.config_page,
             "reference/presets.md": docs_pages.presets_page}


def on_files(files, config):
    try:
        for uri, make in GENERATED.items():
            files.append(File.generated(config, uri, content=make()))
    except docs_pages.DocsError as e:
        raise PluginError(str(e)) from None
    for png in docs_pages.zoo_curves():
        uri = f"zoo/{png.parent.name}/curve.png"
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files


def on_page_markdown(markdown, page, config, files):
    prefix = "../" * page.file.src_uri.count("/")
    # Pages at the docs root link the zoo's curves as the repository lays them out.
    markdown = markdown.replace("](../zoo/", f"]({prefix}zoo/")
    try:
        return docs_pages.expand(markdown, prefix)
    except docs_pages.DocsError as e:
        raise PluginError(f"{page.file.src_uri}: {e}") from None
