"""Sphinx configuration: Markdown (MyST) pages, as SB3 and sb3-contrib."""

import sb3_latent

project = "sb3-latent"
author = "sb3-latent developers"
release = sb3_latent.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc"]
autodoc_typehints = "none"  # the signatures are long; each :param: already says what it takes
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
