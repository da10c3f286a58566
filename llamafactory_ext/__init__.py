"""llamafactory_ext: Chinese datasets and GPU-sized recipes for LLaMA-Factory 0.9.5.

Data flows one way: sources → normalize → parse → convert (Sample) → filter/dedup → split → format → io.
"""

__version__ = "0.1.0"
