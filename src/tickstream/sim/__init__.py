"""The exchange simulator: a seeded market model served over the brokers' real protocols.

``universe`` (instruments and reference prices), ``clock`` (exchange time inside a session),
``market`` (pure, numpy), ``kite_ws`` / ``angel_ws`` (WebSocket servers), ``faults``,
``server`` (:class:`~tickstream.sim.server.SimServer` wiring it all, optionally with the REST
simulators in ``rest``). Import the submodules directly; this package imports nothing heavy.
"""
