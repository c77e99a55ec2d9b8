"""Stage functions of the research pipeline; ``pipelines/*.py`` are thin entry points."""
