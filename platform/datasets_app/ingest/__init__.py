"""The Django-free ingestion core of datasets: sniffing, streaming readers, validation and
normalization, PII masking, splitting and export. `pipeline.ingest()` is the upload path."""
