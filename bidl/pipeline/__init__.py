"""Helpers of the Snakemake pipeline (``workflow/`` and ``scripts/``), not part of the library API.

- :mod:`bidl.pipeline.config`: loading presets, their schema validation and smoke form, the network names;
  ``python -m bidl.pipeline.config PRESET...`` checks presets before a run.
- :mod:`bidl.pipeline.cli`: the argument and logging helpers of the scripts.
- :mod:`bidl.pipeline.tables`: the Markdown, CSV and LaTeX writers of the result tables.
- :mod:`bidl.pipeline.bench`: the neuron speed benchmark harness and the SpikingJelly port of the DVS128
  network.

``import bidl`` does not import this subpackage; :mod:`bidl.pipeline.config` needs the ``pipeline`` extra
(pyyaml, jsonschema).
"""
