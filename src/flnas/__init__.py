"""flnas: FL-NAS, fairness-aware neural architecture search with a large language model as designer.

The pipeline, one subpackage each: data -> space -> designers -> evaluate -> study -> report,
with the command line (``flnas``) on top.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
