"""Dataset formats, one module each, read and written symmetrically: ``read(...) -> DetectionDataset`` and
``write(dataset, ...)``."""
