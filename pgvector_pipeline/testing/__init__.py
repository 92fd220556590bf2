"""Not part of the pipeline: the embedded server, sample LangChain stores, the demo and pytest fixtures.

The pipeline never imports from here; the demo, the benchmark and the tests do.
"""
