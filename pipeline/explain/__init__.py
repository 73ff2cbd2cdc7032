"""`wxemu explain`: attribution of a region-mean emulator forecast to its inputs, with measured faithfulness."""

from pipeline.explain.config import ExplainConfig
from pipeline.explain.output import open_explanation, write_figures
from pipeline.explain.run import ExplainResult, explain

__all__ = ["ExplainConfig", "ExplainResult", "explain", "open_explanation", "write_figures"]
