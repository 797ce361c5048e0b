"""Training, evaluation and export of fine-tuned DETR-family detectors."""
