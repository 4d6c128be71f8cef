"""The application core: the pipeline, the services it runs on, and their start-up."""
