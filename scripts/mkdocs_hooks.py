"""MkDocs hooks (``mkdocs.yml``'s ``hooks``): the pages generated at build time.

``reference/config.md`` comes from ``protocol/settings.py``'s declarations
(``scripts.config_reference``) and ``reference/metrics.md`` from ``actors/metrics.py``'s
(``scripts.metrics_reference``), so neither is written by hand and a setting or a metric
added to the code is in the next build of the site.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # mkdocs loads this file by path, not as scripts.mkdocs_hooks
    sys.path.insert(0, str(ROOT))

from scripts import config_reference, metrics_reference  # noqa: E402


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for page in (config_reference, metrics_reference):
        files.append(File.generated(config, page.PAGE, content=page.markdown()))
    return files
