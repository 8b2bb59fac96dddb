"""infersim: a discrete-event simulator of heterogeneous, disaggregated LLM inference clusters.

Data flows ``hardware → model → cost → sim → metrics → plan``; the CLI and notebooks are thin faces
over this Python API.
"""

__version__ = "0.1.0"
