"""Stage 2, data: ingest, validate (pandera, quarantine), clean and de-duplicate, augment, split, report, lineage."""
