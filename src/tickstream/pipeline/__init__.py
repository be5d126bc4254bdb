"""The pure tick pipeline: normalize -> dedup -> sequence -> state -> candles -> indicators.

:class:`tickstream.pipeline.engine.PipelineEngine` wires the stages; each stage module documents
its own decisions. Nothing here does I/O.
"""
