"""DVC matrix stages (pipelines/matrix/dvc.yaml): see py_finance.pipeline.matrix."""

from py_finance.pipeline.matrix import main

if __name__ == "__main__":
    main()
