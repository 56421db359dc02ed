"""The sample-data generator: deterministic landing CSVs with injected defects and a manifest predicting exactly
what silver concludes (``python runner.py generate``). Not part of the pipeline: a test and demo fixture.

``writer`` writes files and the manifest; ``data`` draws clean rows, ``sources`` groups them into files,
``defects`` catalogs the defect kinds (one per declared rule, from :mod:`lakehouse.rules`), ``plan`` places them,
``mutations`` and ``lines`` change and render a row.
"""

from lakehouse.sample.writer import generate

__all__ = ["generate"]
